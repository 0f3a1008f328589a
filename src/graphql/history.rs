//! The journal as the API shows it: entries, their lines, and the history filter.

use crate::entity::journal_line;
use crate::graphql::amount::{CreditAmount, SignedCreditAmount};
use crate::graphql::metadata::{Metadata, MetadataFilter};
use crate::graphql::types::*;
use crate::service::ServiceError;
use crate::service::corrections::ExpiryDetail;
use crate::service::gifts::GiftDetail;
use crate::service::metadata::{Metadata as Parsed, MetadataMatch};
use crate::service::reads::HistoryItem;
use crate::store::journal::{EntryKind as StoreKind, HistoryFilter as StoreFilter};
use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

/// One change to an account's credits, as the append-only journal recorded it; never edited.
#[derive(SimpleObject)]
pub struct JournalEntry {
    /// The journal's sequence number: strictly increasing, the order of "newest first".
    pub sequence: ID,
    /// What kind of change it is.
    pub kind: EntryKind,
    /// The net change to the account's credits (negative for a spend or expiry).
    pub amount: SignedCreditAmount,
    /// When the change took effect (an expiry is dated at the lot's expiry instant).
    pub effective_at: DateTime<Utc>,
    /// When the entry was written.
    pub recorded_at: DateTime<Utc>,
    /// The operation that wrote it (`spend`, `grant`, `refund`, `expire`, ...).
    pub operation: String,
    /// The idempotency key of the request that wrote it, if it came from one.
    pub idempotency_key: Option<String>,
    /// The feature a spend was for, if it named one.
    pub feature: Option<String>,
    /// The model a spend was for, if it named one.
    pub model: Option<String>,
    /// Why: the reason given with the request, or what the service says of its own entries.
    pub reason: Option<String>,
    /// The operator who made the entry (an admin token's subject; "admin" for a token that
    /// names none); null for entries made by the service, users and scheduled jobs.
    pub actor: Option<String>,
    /// The metadata the request that wrote it carried (a grant, spend, reservation and its
    /// capture or release, purchase payment, or market job), or null.
    pub metadata: Option<Metadata>,
    /// Its lines: the change to each lot it touched, which sum to `amount`.
    pub lines: Vec<JournalLine>,
    /// The account's balance as recorded right after this entry, in sequence order: what its
    /// lots held then, in total. Held credits are not in it (a hold takes them out of the lots
    /// until it is settled), and a lot past its expiry still is until its EXPIRE entry writes it
    /// off: `account.balanceAt` answers what a read at an instant showed.
    pub balance_after: CreditAmount,
    /// For an EXPIRY_CHANGE entry, the lot's old and new expiry; null for every other kind.
    pub expiry_change: Option<LotExpiryChange>,
    /// The other side of a gift: the recipient's external id on a GIFT_SENT entry, the
    /// sender's on a GIFT_RECEIVED one; null for every other kind.
    pub counterparty: Option<ID>,
}

/// A lot's expiry as an operator moved it (`changeLotExpiry`).
#[derive(SimpleObject)]
pub struct LotExpiryChange {
    /// The lot.
    pub lot_id: ID,
    /// Its expiry before; null when it never expired.
    pub previous_expires_at: Option<DateTime<Utc>>,
    /// Its expiry after.
    pub expires_at: DateTime<Utc>,
}

/// One lot's part of a journal entry.
#[derive(SimpleObject)]
pub struct JournalLine {
    /// The lot changed.
    pub lot_id: ID,
    /// The change to this lot (negative when credits left it).
    pub amount: SignedCreditAmount,
}

impl From<&journal_line::Model> for JournalLine {
    fn from(line: &journal_line::Model) -> Self {
        JournalLine { lot_id: ID(line.lot_id.to_string()), amount: signed(line.delta_micros) }
    }
}

impl TryFrom<HistoryItem> for JournalEntry {
    type Error = ServiceError;

    fn try_from(item: HistoryItem) -> Result<Self, ServiceError> {
        let e = item.entry;
        let kind = StoreKind::parse(&e.kind).ok_or_else(|| corrupt(format!("journal entry {}: kind {:?}", e.id, e.kind)))?;
        Ok(JournalEntry {
            sequence: ID(e.id.to_string()),
            kind: kind.into(),
            amount: signed(e.amount_micros),
            effective_at: e.effective_at,
            recorded_at: e.created_at,
            operation: e.operation,
            idempotency_key: e.idempotency_key,
            feature: e.feature,
            model: e.model,
            reason: e.reason,
            actor: e.actor,
            metadata: Metadata::of(e.metadata.as_deref().map(Parsed::from_stored).transpose()?),
            lines: item.lines.iter().map(JournalLine::from).collect(),
            counterparty: match kind {
                StoreKind::GiftSent | StoreKind::GiftReceived => GiftDetail::of(e.detail.as_deref()).map(|d| ID(d.counterparty)),
                _ => None,
            },
            expiry_change: ExpiryDetail::of(e.detail.as_deref()).map(|d| LotExpiryChange {
                lot_id: ID(d.lot_id.to_string()),
                previous_expires_at: d.from,
                expires_at: d.to,
            }),
            balance_after: match e.balance_after_micros {
                micros if micros >= 0 => credits(crate::ledger::Credits::from_micros(micros)),
                micros => return Err(corrupt(format!("journal entry {}: balance after {micros}", e.id))),
            },
        })
    }
}

/// Filters on the journal; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct HistoryFilter {
    /// Only these kinds of entries.
    pub kinds: Option<Vec<EntryKind>>,
    /// Only entries for this feature (exact; letters, digits and `._:/-`, up to 64 characters).
    pub feature: Option<String>,
    /// Effective at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Effective strictly before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only entries whose metadata has this key with exactly this value. Not indexed: it is
    /// checked on the account's entries the other conditions leave, newest first, so a rare
    /// value can read much of a long history (narrow it with `from`, `until` or `kinds`).
    pub metadata: Option<MetadataFilter>,
}

impl HistoryFilter {
    pub(crate) fn into_store(self) -> Result<StoreFilter, ServiceError> {
        if let (Some(from), Some(until)) = (self.from, self.until)
            && from >= until
        {
            return Err(crate::service::ServiceError::bad_input("from must be before until"));
        }
        let feature = self.feature.as_deref().map(|f| crate::service::input::label("feature", f)).transpose()?;
        let kinds = self.kinds.unwrap_or_default();
        if kinds.len() > StoreKind::ALL.len() {
            return Err(crate::service::ServiceError::bad_input("too many kinds"));
        }
        let metadata = self.metadata.map(|m| MetadataMatch::parse(&m.key, &m.value)).transpose()?.map(|m| (m.key, m.value));
        Ok(StoreFilter { kinds: kinds.into_iter().map(Into::into).collect(), feature, from: self.from, until: self.until, metadata })
    }
}
