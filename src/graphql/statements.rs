//! Monthly statements: `Account.statement(month:)`, its totals typed, and the whole statement
//! as the canonical JSON document that `credits statement verify` checks (docs/statements.md).

use crate::graphql::amount::SignedCreditAmount;
use crate::graphql::types::{EntryKind, LotClass, LotSource, signed};
use crate::ledger;
use crate::service::ServiceError;
use crate::service::statements::StatementView;
use crate::store::journal::EntryKind as StoreKind;
use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

/// A month of an account: every journal entry effective in it, totalled. Balances are the lots'
/// credits (held credits are outside the lots: a hold shows as a HOLD movement, its capture as
/// a RELEASE and a SPEND), and `opening + Σ movements = closing` exactly, for the account and for
/// every lot. All amounts are signed decimals; only `movements` and a lot row of a hold's part
/// that returned after its lot's expiry can be negative.
#[derive(SimpleObject)]
pub struct Statement {
    /// The document's version: "credits-statement-v1". Its JSON and digest are as
    /// docs/statements.md of that version says.
    pub format: String,
    /// The month, "YYYY-MM" (UTC).
    pub month: String,
    /// The month's first instant (inclusive).
    pub from: DateTime<Utc>,
    /// The next month's first instant (exclusive).
    pub to: DateTime<Utc>,
    /// When the statement was made: `to` once the month is over, else now. Entries effective
    /// after it are not in it.
    pub as_of: DateTime<Utc>,
    /// True when the month is over and no write-off dated in it is still to come (no lot that
    /// expired in it still waits for the expiry worker): the statement will not change. False for
    /// the month in progress.
    pub complete: bool,
    /// The lots' credits at `from`.
    pub opening: SignedCreditAmount,
    /// The lots' credits at `asOf`: `opening` plus every movement.
    pub closing: SignedCreditAmount,
    /// Credits granted in the month (GRANT entries), by the source of the lot each created.
    pub grants_by_source: Vec<StatementSourceTotal>,
    /// Credits spent in the month (SPEND entries: spends, captured reservations, metered
    /// settlements), by feature; entries without a feature under a null feature.
    pub spends_by_feature: Vec<StatementFeatureTotal>,
    /// Credits written off at expiry in the month (EXPIRE entries), as a positive amount.
    pub expired: SignedCreditAmount,
    /// Credits taken back by refunds in the month (REFUND entries), as a positive amount.
    pub refunded: SignedCreditAmount,
    /// The net change of every entry kind that occurred in the month (negative when credits
    /// left the lots): they add up to `closing - opening`.
    pub movements: Vec<StatementMovement>,
    /// Every lot that held credits at `from` or was touched in the month, by id.
    pub lots: Vec<StatementLot>,
    /// How many journal entries the month has (what the digest covers).
    pub entry_count: i64,
    /// SHA-256 (lowercase hex) of the month's entries, each one line of canonical JSON, in
    /// sequence order (docs/statements.md).
    pub digest: String,
    /// The whole statement as one canonical JSON document: what `credits statement show` prints
    /// and `credits statement verify FILE` checks against the database.
    pub json: String,
}

/// Grants of one lot source in a month.
#[derive(SimpleObject)]
pub struct StatementSourceTotal {
    /// Where the lots came from.
    pub source: LotSource,
    /// What those grants put in.
    pub credits: SignedCreditAmount,
}

/// Spends under one feature in a month.
#[derive(SimpleObject)]
pub struct StatementFeatureTotal {
    /// The feature the spends named; null for spends that named none.
    pub feature: Option<String>,
    /// What they took, as a positive amount.
    pub credits: SignedCreditAmount,
}

/// The net change of one entry kind in a month.
#[derive(SimpleObject)]
pub struct StatementMovement {
    /// The entry kind.
    pub kind: EntryKind,
    /// The sum of its entries' amounts: negative when credits left the lots.
    pub credits: SignedCreditAmount,
}

/// One lot's month: `opening + creditsIn - creditsOut - expired = closing`.
#[derive(SimpleObject)]
pub struct StatementLot {
    /// The lot (as in `Account.lots`).
    pub id: ID,
    /// Where it came from.
    pub source: LotSource,
    /// What it is worth to the holder.
    pub class: LotClass,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// When it expires; null for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its credits at `from`.
    pub opening: SignedCreditAmount,
    /// What entries of the month put into it: its grant, releases of holds, a rollover into it.
    pub credits_in: SignedCreditAmount,
    /// What entries of the month other than expiry took out of it: spends, holds, transfers,
    /// refunds, revocations, voids, adjustments, a rollover out of it.
    pub credits_out: SignedCreditAmount,
    /// What EXPIRE entries of the month wrote off.
    pub expired: SignedCreditAmount,
    /// Its credits at `asOf`.
    pub closing: SignedCreditAmount,
}

fn corrupt(what: &str, value: &str) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("statement: unknown {what} {value:?} in the journal"))
}

fn source(s: &str) -> Result<LotSource, ServiceError> {
    s.parse::<ledger::LotSource>().map(Into::into).map_err(|_| corrupt("lot source", s))
}

impl TryFrom<StatementView> for Statement {
    type Error = ServiceError;

    fn try_from(view: StatementView) -> Result<Self, ServiceError> {
        let json = view.json();
        let s = view.statement;
        let lots = s
            .lots
            .iter()
            .map(|row| {
                Ok(StatementLot {
                    id: ID(row.lot_id.to_string()),
                    source: source(&row.info.source)?,
                    class: row.info.class.parse::<ledger::LotClass>().map_err(|_| corrupt("lot class", &row.info.class))?.into(),
                    granted_at: row.info.granted_at,
                    expires_at: row.info.expires_at,
                    opening: signed(row.opening),
                    credits_in: signed(row.credited),
                    credits_out: signed(row.debited),
                    expired: signed(row.expired),
                    closing: signed(row.closing),
                })
            })
            .collect::<Result<_, ServiceError>>()?;
        Ok(Statement {
            format: ledger::statement::FORMAT.to_string(),
            month: s.window.month.to_string(),
            from: s.window.from(),
            to: s.window.to(),
            as_of: s.window.as_of,
            complete: view.complete,
            opening: signed(s.opening),
            closing: signed(s.closing),
            grants_by_source: s
                .grants_by_source
                .iter()
                .map(|(name, micros)| Ok(StatementSourceTotal { source: source(name)?, credits: signed(*micros) }))
                .collect::<Result<_, ServiceError>>()?,
            spends_by_feature: s
                .spends_by_feature
                .iter()
                .map(|(feature, micros)| StatementFeatureTotal { feature: feature.clone(), credits: signed(*micros) })
                .collect(),
            expired: signed(s.expired),
            refunded: signed(s.refunded),
            movements: s
                .movements
                .iter()
                .map(|(kind, micros)| {
                    let kind = StoreKind::parse(kind).ok_or_else(|| corrupt("entry kind", kind))?;
                    Ok(StatementMovement { kind: kind.into(), credits: signed(*micros) })
                })
                .collect::<Result<_, ServiceError>>()?,
            lots,
            entry_count: i64::try_from(s.entry_count).unwrap_or(i64::MAX),
            digest: s.digest,
            json,
        })
    }
}
