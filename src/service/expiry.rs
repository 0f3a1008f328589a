//! Writing off expired lots. Reads already exclude them; this makes the journal say so, dated at
//! each lot's own expiry instant, under the same account lock as a spend.

use crate::ledger::Credits;
use crate::service::posting::{self, EntryMeta};
use crate::service::{Ledger, ServiceError, tx};
use crate::store::{self, journal::EntryKind, lots};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The most lots one call looks at; the worker calls again until a batch comes back short.
pub const MAX_EXPIRY_BATCH: u64 = 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryReport {
    pub lots: u64,
    pub credits: Credits,
}

impl Ledger {
    pub async fn expire_due(&self, now: DateTime<Utc>, batch: u64) -> Result<ExpiryReport, ServiceError> {
        let due = lots::due_for_expiry(&self.db, now, batch.clamp(1, MAX_EXPIRY_BATCH)).await?;
        let mut by_account: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for lot in &due {
            by_account.entry(lot.account_id).or_default().insert(lot.id);
        }
        let mut report = ExpiryReport::default();
        for (account_id, lot_ids) in by_account {
            let program = self.program.clone();
            let (count, credits) = tx::write(&self.db, |txn| {
                let (lot_ids, program) = (lot_ids.clone(), program.clone());
                Box::pin(async move {
                    store::accounts::lock(txn, account_id).await?;
                    let mut count = 0u64;
                    let mut credits = Credits::ZERO;
                    // Only this batch's lots, re-read under the lock: a spend or another worker may
                    // have closed some since the batch was chosen.
                    for lot in lots::open_for_account(txn, account_id).await?.into_iter().filter(|l| lot_ids.contains(&l.id)) {
                        let rule = lots::to_rule(&lot)?;
                        let Some(expires_at) = rule.expires_at.filter(|_| rule.is_expired(now)) else {
                            continue;
                        };
                        if rule.remaining.is_zero() {
                            continue;
                        }
                        let meta = EntryMeta { reason: Some("expired"), effective_at: expires_at, ..EntryMeta::now("expire", now) };
                        posting::debit(txn, account_id, EntryKind::Expire, &[(&rule, rule.remaining)], meta).await?;
                        count += 1;
                        credits = credits.checked_add(rule.remaining).expect("sums fit");
                    }
                    if count > 0 {
                        crate::service::notices::check_low_credits(txn, &program, account_id, now).await?;
                    }
                    Ok::<_, ServiceError>((count, credits))
                })
            })
            .await?;
            report.lots += count;
            report.credits = report.credits.checked_add(credits).expect("sums fit");
        }
        if report.lots > 0 {
            tracing::info!(lots = report.lots, amount.credits = %report.credits, "expired lots written off");
        }
        Ok(report)
    }
}
