//! Model-based test: random sequences of grants, spends, replays, clock moves and expiries go
//! through the store and through the pure rules alone; the two must agree lot by lot.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::Duration;
use credits::ledger::wallet::Wallet;
use credits::ledger::{Credits, LotClass, LotSource};
use credits::service::ServiceError;
use credits::service::spending::{GrantRequest, SpendRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

const SEEDS: u64 = 3;
const STEPS: usize = 60;

async fn store_and_rules_agree_lot_by_lot(backend: Backend) {
    for seed in 0..SEEDS {
        run(backend, seed).await;
    }
}

async fn run(backend: Backend, seed: u64) {
    let app = TestApp::spawn(backend).await;
    app.create_account("model").await;
    let order = app.ledger.program.consumption_order.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut wallet = Wallet::default();
    let mut lot_ids: HashMap<i64, i64> = HashMap::new(); // wallet id -> stored id
    let mut spends: Vec<(String, Credits, Outcome)> = Vec::new();

    for step in 0..STEPS {
        let now = app.clock.now();
        let context = format!("seed {seed} step {step}");
        match rng.random_range(0..10) {
            0..=2 => {
                let class = LotClass::ALL[rng.random_range(0..3)];
                let micros = rng.random_range(1..40_000_000i64);
                let expires_at = rng.random_bool(0.6).then(|| now + Duration::minutes(rng.random_range(1..120)));
                let receipt = app
                    .ledger
                    .grant(
                        GrantRequest {
                            account: "model".into(),
                            amount: Credits::from_micros(micros),
                            class,
                            source: LotSource::Adjustment,
                            expires_at,
                            valid_for: None,
                            reason: None,
                            idempotency_key: format!("grant-{step}"),
                        },
                        now,
                    )
                    .await
                    .expect(&context);
                let wallet_id = wallet.grant(class, LotSource::Adjustment, Credits::from_micros(micros), now, expires_at);
                lot_ids.insert(wallet_id, receipt.lot_id);
            }
            3..=6 => {
                let amount = Credits::from_micros(rng.random_range(1..30_000_000i64));
                let key = format!("spend-{step}");
                let stored = spend(&app, &key, amount, now).await;
                let expected = wallet
                    .spend(amount, &order, now)
                    .map(|takes| takes.iter().map(|t| (lot_ids[&t.lot_id], t.amount)).collect::<Vec<_>>())
                    .map_err(|short| short.available);
                assert_eq!(stored, expected, "{context}: spend of {amount}");
                spends.push((key, amount, stored));
            }
            7 if !spends.is_empty() => {
                // A replay, possibly much later: the first outcome, and no change to any lot.
                let (key, amount, first) = spends[rng.random_range(0..spends.len())].clone();
                assert_eq!(spend(&app, &key, amount, now).await, first, "{context}: replay of {key}");
            }
            8 => app.clock.set(now + Duration::minutes(rng.random_range(1..45))),
            _ => {
                let stored = app.ledger.expire_due(now, 1000).await.expect(&context);
                let expected = wallet.expire(now);
                assert_eq!(stored.lots as usize, expected.len(), "{context}: lots written off");
                assert_eq!(stored.credits, expected.iter().map(|(_, c)| *c).sum::<Credits>(), "{context}: credits written off");
            }
        }
        compare_lots(&app, &wallet, &lot_ids, &context).await;
    }
    app.assert_audit_clean().await;
}

/// A spend's takes as (stored lot id, amount), or the available amount of a refusal.
type Outcome = Result<Vec<(i64, Credits)>, Credits>;

async fn spend(app: &TestApp, key: &str, amount: Credits, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    let request = SpendRequest {
        account: "model".into(),
        amount: Some(amount),
        price: None,
        idempotency_key: key.into(),
        feature: "model".into(),
        model: None,
        reason: None,
    };
    match app.ledger.spend(request, now).await {
        Ok(receipt) => Ok(receipt.takes.iter().map(|t| (t.lot_id, t.amount)).collect()),
        Err(ServiceError::InsufficientCredits { available, .. }) => Err(available),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

async fn compare_lots(app: &TestApp, wallet: &Wallet, lot_ids: &HashMap<i64, i64>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let (stored, _) = app.ledger.lots_page(account.id, true, None, 100).await.unwrap();
    assert_eq!(stored.len(), wallet.lots.len(), "{context}: number of lots");
    for lot in &wallet.lots {
        let row = stored.iter().find(|r| r.id == lot_ids[&lot.id]).expect("every lot is stored");
        assert_eq!(row.remaining_micros, lot.remaining.micros(), "{context}: lot {}", lot.id);
        assert_eq!(row.expires_at, lot.expires_at, "{context}: lot {} expiry", lot.id);
    }
    assert_eq!(account.balance_micros, wallet.remaining().micros(), "{context}: cached balance");
}

on_both!(store_and_rules_agree_lot_by_lot);
