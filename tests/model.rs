//! Model-based test: random sequences of grants, spends, holds (capture, release, deadlines),
//! replays, status changes, clock moves and expiries go through the store and through the pure
//! rules alone (`ledger::wallet`); the two must agree lot by lot, outcome by outcome, and in what
//! a balance read shows (total, held, available) at every step, not only in conservation.
//!
//! Short in CI; long with `cargo test --test main model::long -- --ignored`, or any size with
//! `CREDITS_MODEL_SEEDS` and `CREDITS_MODEL_STEPS`.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use credits::ledger::wallet::{NotHeld, Settled, Wallet};
use credits::ledger::{AccountStatus, Credits, LotClass, LotSource};
use credits::service::ServiceError;
use credits::service::reservations::ReserveRequest;
use credits::service::spending::{GrantRequest, SpendRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

const SEEDS: u64 = 3;
const STEPS: usize = 80;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn store_and_rules_agree_lot_by_lot(backend: Backend) {
    let (seeds, steps) = (setting("CREDITS_MODEL_SEEDS", SEEDS), setting("CREDITS_MODEL_STEPS", STEPS as u64) as usize);
    let mut days_taken = 0;
    for seed in 0..seeds {
        run(backend, crate::support::LEDGER_PROGRAM, seed, steps).await;
        // carat: the day's free credits as the last tier of every spend and hold.
        days_taken += run(backend, "carat", seed, steps).await;
    }
    assert!(days_taken > 0, "no carat run took the day's free credits: the model did not test them");
}

/// The long run, for before a release: 40 seeds of 400 steps on each database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with --ignored"]
async fn long() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for seed in 100..140 {
            run(backend, crate::support::LEDGER_PROGRAM, seed, 400).await;
            assert!(run(backend, "carat", seed, 400).await > 0, "400 steps take the day's free credits at least once");
        }
    }
}

/// What an operation came to, in the terms both sides can give.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// (stored lot id, amount) per take.
    Took(Vec<(i64, Credits)>),
    Short {
        available: Credits,
    },
    NotActive,
    Settled(Settled),
    NotHeld,
}

struct Model {
    wallet: Wallet,
    /// wallet lot id -> stored lot id
    lot_ids: HashMap<i64, i64>,
    /// wallet hold id -> stored reservation id
    hold_ids: HashMap<i64, i64>,
    status: AccountStatus,
}

impl Model {
    /// A take from a lot the rules just wrote (the day's free credits) learns its stored id
    /// from the store's take at the same place.
    fn learn(&mut self, takes: &[credits::ledger::Take], stored: &[(i64, Credits)]) {
        for (take, (stored_id, _)) in takes.iter().zip(stored) {
            self.lot_ids.entry(take.lot_id).or_insert(*stored_id);
        }
    }

    fn stored(&self, takes: &[credits::ledger::Take]) -> Vec<(i64, Credits)> {
        takes.iter().map(|t| (self.lot_ids[&t.lot_id], t.amount)).collect()
    }
}

/// Returns how many days' free credits the run took.
async fn run(backend: Backend, program: &str, seed: u64, steps: usize) -> usize {
    let app = TestApp::spawn_with(backend, program).await;
    app.create_account("model").await;
    let order = app.ledger.program.consumption_order.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = app.ledger.program.plan(&app.ledger.program.default_plan).expect("the default plan");
    let mut wallet = Wallet::default();
    wallet.daily_free = plan.daily_free_credits;
    let mut model = Model { wallet, lot_ids: HashMap::new(), hold_ids: HashMap::new(), status: AccountStatus::Active };
    let mut spends: Vec<(String, Credits, Outcome)> = Vec::new();

    for step in 0..steps {
        let now = app.clock.now();
        let context = format!("{program}: seed {seed} step {step}");
        let op = rng.random_range(0..14);
        if std::env::var_os("CREDITS_MODEL_TRACE").is_some() {
            eprintln!("{context}: op {op} at {now}; holds {:?}", model.wallet.holds);
        }
        match op {
            0..=2 => {
                let class = LotClass::ALL[rng.random_range(0..3)];
                let micros = rng.random_range(1..40_000_000i64);
                let expires_at = rng.random_bool(0.6).then(|| now + Duration::minutes(rng.random_range(1..120)));
                let granted = app.ledger.grant(grant(micros, class, expires_at, format!("grant-{step}")), now).await;
                match granted {
                    Ok(receipt) => {
                        assert!(model.status.may_receive_credits(), "{context}: a grant to a {} account", model.status);
                        let wallet_id = model.wallet.grant(class, LotSource::Adjustment, Credits::from_micros(micros), now, expires_at);
                        model.lot_ids.insert(wallet_id, receipt.lot_id);
                    }
                    Err(ServiceError::AccountNotActive { .. }) => assert!(!model.status.may_receive_credits(), "{context}"),
                    Err(other) => panic!("{context}: grant: {other:?}"),
                }
            }
            3..=5 => {
                let amount = Credits::from_micros(rng.random_range(1..30_000_000i64));
                let key = format!("spend-{step}");
                let stored = spend(&app, &key, amount, now).await;
                // Every spend request releases the account's lapsed holds first, refused or not.
                model.wallet.lapse(now);
                let expected = if model.status == AccountStatus::Active {
                    match model.wallet.spend(amount, &order, now) {
                        Ok(takes) => {
                            if let Outcome::Took(stored) = &stored {
                                model.learn(&takes, stored);
                            }
                            Outcome::Took(model.stored(&takes))
                        }
                        Err(short) => Outcome::Short { available: short.available },
                    }
                } else {
                    Outcome::NotActive
                };
                assert_eq!(stored, expected, "{context}: spend of {amount}");
                spends.push((key, amount, stored));
            }
            6 => {
                let amount = Credits::from_micros(rng.random_range(1..20_000_000i64));
                let hold_for = Duration::minutes(rng.random_range(1..60));
                let held = app
                    .ledger
                    .reserve(
                        ReserveRequest {
                            account: "model".into(),
                            amount,
                            idempotency_key: format!("hold-{step}"),
                            feature: "model".into(),
                            model: None,
                            reason: None,
                            hold_seconds: Some(hold_for.num_seconds()),
                        },
                        now,
                    )
                    .await;
                let expected = if model.status == AccountStatus::Active {
                    model.wallet.hold(amount, &order, now, now + hold_for)
                } else {
                    assert!(matches!(held, Err(ServiceError::AccountNotActive { .. })), "{context}: hold: {held:?}");
                    continue_with(&app, &model, &context).await;
                    continue;
                };
                match (held, expected) {
                    (Ok(hold), Ok((wallet_id, takes))) => {
                        let stored: Vec<_> = hold.takes.iter().map(|t| (t.lot_id, t.amount)).collect();
                        model.learn(&takes, &stored);
                        assert_eq!(stored, model.stored(&takes), "{context}: hold of {amount}");
                        model.hold_ids.insert(wallet_id, hold.reservation_id);
                    }
                    (Err(ServiceError::InsufficientCredits { available, .. }), Err(short)) => {
                        assert_eq!(available, short.available, "{context}: hold of {amount} refused");
                    }
                    (held, expected) => panic!("{context}: hold of {amount}: store {held:?}, rules {expected:?}"),
                }
            }
            7 | 8 if !model.wallet.holds.is_empty() => {
                let hold = model.wallet.holds[rng.random_range(0..model.wallet.holds.len())].clone();
                let reservation = model.hold_ids[&hold.id].to_string();
                let key = format!("settle-{step}");
                let capture = rng.random_bool(0.6).then(|| {
                    let micros = hold.amount().micros();
                    Credits::from_micros(rng.random_range(0..=micros))
                });
                let stored = match capture {
                    Some(amount) => app.ledger.capture(&reservation, amount, &key, now).await,
                    None => app.ledger.release(&reservation, &key, now).await,
                };
                let stored = match stored {
                    Ok(s) => Outcome::Settled(Settled { captured: s.captured, released: s.released, expired: s.expired }),
                    Err(ServiceError::ReservationNotHeld(_)) => Outcome::NotHeld,
                    Err(other) => panic!("{context}: settle: {other:?}"),
                };
                let expected = match model.wallet.settle(hold.id, capture, now) {
                    Ok(settled) => Outcome::Settled(settled),
                    Err(NotHeld) => Outcome::NotHeld,
                };
                assert_eq!(stored, expected, "{context}: settle {capture:?} of hold {}", hold.id);
            }
            9 if !spends.is_empty() => {
                // A replay, possibly much later: the first outcome, and no change to any lot.
                let (key, amount, first) = spends[rng.random_range(0..spends.len())].clone();
                assert_eq!(spend(&app, &key, amount, now).await, first, "{context}: replay of {key}");
                model.wallet.lapse(now);
            }
            10 => {
                // Mostly active: a status change now and then, and back.
                let status = match rng.random_range(0..6) {
                    0 => AccountStatus::Suspended,
                    1 => AccountStatus::Inactive,
                    _ => AccountStatus::Active,
                };
                app.ledger.set_status("model", status).await.expect(&context);
                model.status = status;
            }
            11 => app.clock.set(now + Duration::minutes(rng.random_range(1..45))),
            _ => {
                // The workers' order: holds past their deadline, then lots past their expiry.
                let released = app.ledger.expire_reservations(now, 1000).await.expect(&context);
                assert_eq!(released as usize, model.wallet.lapse(now).len(), "{context}: holds released by the worker");
                let stored = app.ledger.expire_due(now, 1000).await.expect(&context);
                let expected = model.wallet.expire(now);
                assert_eq!(stored.lots as usize, expected.len(), "{context}: lots written off");
                assert_eq!(stored.credits, expected.iter().map(|(_, c)| *c).sum::<Credits>(), "{context}: credits written off");
            }
        }
        continue_with(&app, &model, &context).await;
    }
    app.assert_audit_clean().await;
    model.wallet.days_written.len()
}

/// After every step: the same lots, the same cached balance, and the same balance read.
async fn continue_with(app: &TestApp, model: &Model, context: &str) {
    compare_lots(app, &model.wallet, &model.lot_ids, context).await;
    compare_reads(app, &model.wallet, app.clock.now(), context).await;
}

fn grant(micros: i64, class: LotClass, expires_at: Option<DateTime<Utc>>, key: String) -> GrantRequest {
    GrantRequest {
        account: "model".into(),
        amount: Credits::from_micros(micros),
        class,
        source: LotSource::Adjustment,
        expires_at,
        valid_for: None,
        reason: None,
        idempotency_key: key,
    }
}

async fn spend(app: &TestApp, key: &str, amount: Credits, now: DateTime<Utc>) -> Outcome {
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
        Ok(receipt) => Outcome::Took(receipt.takes.iter().map(|t| (t.lot_id, t.amount)).collect()),
        Err(ServiceError::InsufficientCredits { available, .. }) => Outcome::Short { available },
        Err(ServiceError::AccountNotActive { .. }) => Outcome::NotActive,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

async fn compare_lots(app: &TestApp, wallet: &Wallet, lot_ids: &HashMap<i64, i64>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let (stored, _) = app.ledger.lots_page(account.id, true, None, 10_000).await.unwrap();
    assert_eq!(stored.len(), wallet.lots.len(), "{context}: number of lots");
    for lot in &wallet.lots {
        let row = stored.iter().find(|r| r.id == lot_ids[&lot.id]).expect("every lot is stored");
        assert_eq!(row.remaining_micros, lot.remaining.micros(), "{context}: lot {}", lot.id);
        assert_eq!(row.expires_at, lot.expires_at, "{context}: lot {} expiry", lot.id);
    }
    assert_eq!(account.balance_micros, wallet.remaining().micros(), "{context}: cached balance");
}

/// A read at `now` shows what the rules say, lapsed holds counted as available before any
/// worker or spend has released them (domain.md §5).
async fn compare_reads(app: &TestApp, wallet: &Wallet, now: DateTime<Utc>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let view = app.ledger.balance(&account, now).await.unwrap();
    assert_eq!(view.available, wallet.available(now), "{context}: available");
    assert_eq!(view.held, wallet.held_at(now), "{context}: held");
}

on_both!(store_and_rules_agree_lot_by_lot);
