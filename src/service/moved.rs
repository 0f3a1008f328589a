//! Credits moved, for `/metrics`: every posting notes what it moved (entry kind, lot class, lot
//! source, micros) while its transaction runs, and the notes reach the counter only once that
//! transaction has committed. Counting inside the posting would count an attempt that is rolled
//! back and retried twice, and a refused one at all.
//!
//! The notes live in a task-local scope that `tx::write_with` opens around each attempt; a
//! posting made outside one (none is, today) is simply not counted.

use crate::ledger::{LotClass, LotSource};
use crate::store::journal::EntryKind;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;

type Key = (&'static str, &'static str, &'static str);

/// What one attempt's postings moved, by (kind, class, source): micros, all positive.
#[derive(Default)]
pub struct Moved(BTreeMap<Key, u64>);

tokio::task_local! {
    static PENDING: RefCell<Moved>;
}

/// Notes that a posting moved `micros` (either sign) of a lot of `class` and `source`.
pub fn note(kind: EntryKind, class: LotClass, source: LotSource, micros: i64) {
    let _outside_a_transaction = PENDING.try_with(|pending| {
        *pending.borrow_mut().0.entry((kind.as_str(), class.as_str(), source.as_str())).or_default() += micros.unsigned_abs();
    });
}

/// Runs one transaction attempt, collecting what its postings note.
pub async fn collect<T>(attempt: impl Future<Output = T>) -> (T, Moved) {
    PENDING
        .scope(RefCell::new(Moved::default()), async {
            let outcome = attempt.await;
            (outcome, PENDING.with(|pending| pending.take()))
        })
        .await
}

impl Moved {
    /// Adds a committed attempt's movements to the counter.
    pub fn record(self) {
        for ((kind, class, source), micros) in self.0 {
            metrics::counter!(crate::telemetry::CREDITS_MOVED, "kind" => kind, "class" => class, "source" => source).increment(micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_are_kept_per_attempt_and_summed_by_kind_class_and_source() {
        let ((), moved) = collect(async {
            note(EntryKind::Spend, LotClass::Paid, LotSource::Purchase, -1_500_000);
            note(EntryKind::Spend, LotClass::Paid, LotSource::Purchase, -500_000);
            note(EntryKind::Grant, LotClass::Free, LotSource::DailyFree, 3_000_000);
        })
        .await;
        assert_eq!(moved.0.get(&("spend", "paid", "purchase")), Some(&2_000_000));
        assert_eq!(moved.0.get(&("grant", "free", "daily_free")), Some(&3_000_000));
        assert_eq!(moved.0.len(), 2);
        // A second attempt starts empty: a retried transaction's first attempt is not counted.
        let ((), again) = collect(async {}).await;
        assert!(again.0.is_empty());
        // Outside an attempt a note is dropped, not a panic.
        note(EntryKind::Spend, LotClass::Paid, LotSource::Purchase, -1);
    }
}
