//! Model-based test: random sequences of grants, spends (a third of them in bulk), holds (capture, release, deadlines),
//! purchases and refunds (their bonus remaining, held or spent), the day's free credits (carat),
//! operators' voids, debits and expiry changes, replays, status changes, clock moves (also as a
//! test clock's advance, whose jobs run at each stop) and expiries go through the store and
//! through the pure rules alone (`ledger::wallet`); the two must agree lot by lot, outcome by outcome, and in what
//! a balance read shows (available, held) at every step, not only in conservation. Each run
//! reports what it went through, and the suite fails if no run met a held or spent bonus.
//!
//! A fourth program (`tests/fixtures/rollover.toml`, on a test clock) has plan credits that roll
//! over: its runs jump to near each month's end, and the rules carry a plan lot's unused credits
//! into a new lot at its end as the store's write-off does, compared lot by lot like the rest.
//!
//! A second model (`gifts_and_spend_limits_agree`, at the end) runs three accounts on the gifts
//! example program: gifts among them under the per-day limits, and spend limits set, cleared,
//! met and given back by holds, against a wallet per account and the model's own counters.
//!
//! Short in CI (3 seeds of 80 steps per program, 200 for the gifts model); long with `cargo test --test main model::long
//! -- --ignored --nocapture` (20 seeds of 400 steps), or any size with
//! `CREDITS_MODEL_SEEDS` and `CREDITS_MODEL_STEPS`.

use crate::on_both;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use credits::ledger::refund::RefundRefusal;
use credits::ledger::test_clock::{Advance, stops};
use credits::ledger::wallet::{NotHeld, RefundTerms, Refunded, Settled, Wallet, WalletPlan};
use credits::ledger::{AccountStatus, Credits, Features, LotClass, LotSource, Priority, Purpose, available_for};
use credits::service::corrections::{AdjustRequest, ExpiryRequest, VoidRequest};
use credits::service::jobs::Job;
use credits::service::metadata::Metadata;
use credits::service::paging::Window;
use credits::service::purchases::BONUS_ORIGIN;
use credits::service::reads::LotView;
use credits::service::refunds::Requester;
use credits::service::reservations::ReserveRequest;
use credits::service::spending::{GrantRequest, SpendRequest};
use credits::service::{Refusal, ServiceError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// Every lot of the model's account in one read: far more than a run makes.
const EVERY_LOT: Window = Window { after: None, before: None, from_end: false, limit: 10_000 };

/// Calendar-month plan credits with rollover (Free: up to 20 of 30, for 2 months).
const ROLLOVER_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rollover.toml");

const SEEDS: u64 = 3;
const STEPS: usize = 80;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn store_and_rules_agree_lot_by_lot(backend: Backend) {
    let (seeds, steps) = (setting("CREDITS_MODEL_SEEDS", SEEDS), setting("CREDITS_MODEL_STEPS", STEPS as u64) as usize);
    let mut covered = Covered::default();
    for seed in 0..seeds {
        // Odd seeds on a test clock: the clock moves are advances, whose jobs the model mirrors.
        covered.add(run(backend, crate::support::LEDGER_PROGRAM, seed, steps, seed % 2 == 1).await);
        // carat: the day's free credits as the last tier of every spend and hold.
        covered.add(run(backend, "carat", seed, steps, false).await);
        // arkain: refunds that take back a first purchase's bonus, held, spent or remaining.
        covered.add(run(backend, "arkain", seed, steps, false).await);
        // Plan credits that roll over at each month's end, on a test clock.
        covered.add(run(backend, ROLLOVER_PROGRAM, seed, steps, true).await);
    }
    // The runs must have met what they are for, or the model tested nothing of it.
    eprintln!("model on {backend:?}: {covered:?}");
    assert!(covered.days_taken > 0 && covered.refunds > 0 && covered.bonus_refunds > 0, "{covered:?}");
    assert!(covered.held_bonus_refunds > 0 && covered.spent_bonus_refunds > 0, "{covered:?}");
    assert!(covered.dashboard_refunds > 0 && covered.dashboard_refusals > 0, "{covered:?}");
    assert!(covered.advances > 0 && covered.midnights > 0, "{covered:?}");
    assert!(
        covered.voids > 0
            && covered.adjustments > 0
            && covered.expiry_changes > 0
            && covered.prioritized > 0
            && covered.upcoming > 0
            && covered.scoped > 0,
        "{covered:?}"
    );
    assert!(covered.carried > 0 && covered.month_ends > 0, "{covered:?}");
}

/// The long run, for before a release: 20 seeds of 400 steps of each program on each database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with --ignored"]
async fn long() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut covered = Covered::default();
        for seed in 100..120 {
            for program in [crate::support::LEDGER_PROGRAM, "carat", "arkain", ROLLOVER_PROGRAM] {
                let test_clock = program == ROLLOVER_PROGRAM || (program == crate::support::LEDGER_PROGRAM && seed % 2 == 1);
                covered.add(run(backend, program, seed, 400, test_clock).await);
            }
        }
        eprintln!("model, long, on {backend:?}: {covered:?}");
        assert!(covered.days_taken > 0 && covered.held_bonus_refunds >= 10 && covered.spent_bonus_refunds >= 10, "{covered:?}");
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
    Refunded(Refunded),
    RefundRefused(RefundRefusal),
}

/// A purchase the model made: its terms, and whether it was refunded.
struct Bought {
    id: i64,
    terms: RefundTerms,
    refunded: bool,
    /// The money refunded so far, through the API or in Stripe's dashboard.
    refunded_minor: i64,
}

struct Model {
    wallet: Wallet,
    /// wallet lot id -> stored lot id
    lot_ids: HashMap<i64, i64>,
    /// wallet hold id -> stored reservation id
    hold_ids: HashMap<i64, i64>,
    status: AccountStatus,
    purchases: Vec<Bought>,
}

impl Model {
    /// Stored lots the model does not know yet (made by the account's creation or a purchase),
    /// in id order, granted in the model alike; returns (wallet id, stored lot).
    async fn adopt_new_lots(&mut self, app: &TestApp, now: DateTime<Utc>) -> Vec<(i64, LotView)> {
        let account = app.ledger.account("model").await.unwrap();
        let mut stored = app.ledger.lots_page(account.id, true, &EVERY_LOT).await.unwrap().items;
        stored.sort_by_key(|l| l.lot.id);
        // Lots the rules carried over at a write-off learn their stored ids first: the stored
        // rollover lot of the same plan period. They are the rules' own, not adopted.
        for carried in self.wallet.carried.clone() {
            if self.lot_ids.contains_key(&carried.lot) {
                continue;
            }
            let key = self.wallet.plan_lots.get(&carried.from).cloned();
            let known: std::collections::HashSet<i64> = self.lot_ids.values().copied().collect();
            let row = stored
                .iter()
                .find(|l| l.lot.source == LotSource::Rollover && l.origin_id == key && !known.contains(&l.lot.id))
                .unwrap_or_else(|| panic!("the store carried {carried:?} too"));
            self.lot_ids.insert(carried.lot, row.lot.id);
        }
        let known: std::collections::HashSet<i64> = self.lot_ids.values().copied().collect();
        let mut adopted = Vec::new();
        for row in stored.into_iter().filter(|l| !known.contains(&l.lot.id)) {
            let lot = &row.lot;
            assert_ne!(lot.source, LotSource::Rollover, "a rollover the rules did not make: {row:?}");
            let wallet_id = self.wallet.grant(lot.class, lot.source, lot.granted, now, lot.expires_at);
            self.lot_ids.insert(wallet_id, lot.id);
            // A plan grant (at sign-up or a month's start): the rules learn it may roll over.
            if row.origin_kind.as_deref() == Some("plan") {
                self.wallet.plan_lots.insert(wallet_id, row.origin_id.clone().expect("a plan lot names its period"));
            }
            adopted.push((wallet_id, row));
        }
        adopted
    }

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

/// What the runs went through, so a suite that never met a rule fails instead of passing.
#[derive(Debug, Default)]
struct Covered {
    days_taken: usize,
    refunds: usize,
    /// Refunds of a purchase that came with a bonus.
    bonus_refunds: usize,
    /// Refunds while a hold held some of the bonus, and after some of it was spent.
    held_bonus_refunds: usize,
    spent_bonus_refunds: usize,
    /// Refunds made in Stripe's dashboard, applied and refused by the rules.
    dashboard_refunds: usize,
    dashboard_refusals: usize,
    /// Test-clock advances, and the midnights they stopped at.
    advances: usize,
    midnights: usize,
    /// Operators' voids and debits that took credits.
    voids: usize,
    adjustments: usize,
    /// Operators' moves of a lot's expiry that applied.
    expiry_changes: usize,
    /// Grants that named a priority.
    prioritized: usize,
    /// Grants that start later, and grants scoped to features.
    upcoming: usize,
    scoped: usize,
    /// Plan lots that carried credits over at their end, and month ends crossed.
    carried: usize,
    month_ends: usize,
}

impl Covered {
    fn add(&mut self, other: Covered) {
        self.days_taken += other.days_taken;
        self.refunds += other.refunds;
        self.bonus_refunds += other.bonus_refunds;
        self.held_bonus_refunds += other.held_bonus_refunds;
        self.spent_bonus_refunds += other.spent_bonus_refunds;
        self.dashboard_refunds += other.dashboard_refunds;
        self.dashboard_refusals += other.dashboard_refusals;
        self.advances += other.advances;
        self.midnights += other.midnights;
        self.voids += other.voids;
        self.adjustments += other.adjustments;
        self.expiry_changes += other.expiry_changes;
        self.prioritized += other.prioritized;
        self.upcoming += other.upcoming;
        self.scoped += other.scoped;
        self.carried += other.carried;
        self.month_ends += other.month_ends;
    }
}

async fn run(backend: Backend, program: &str, seed: u64, steps: usize, test_clock: bool) -> Covered {
    // A test clock starts shortly before a month's end, so its advances cross midnights.
    let app = if test_clock {
        TestApp::spawn_on_test_clock(backend, program, "2026-01-31T23:50:00Z".parse().unwrap()).await
    } else {
        TestApp::spawn_with(backend, program).await
    };
    app.create_account("model").await;
    let order = app.ledger.program.consumption_order.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    // The starts and scopes of grants come from their own stream, so that adding them left the
    // sequence of operations each seed makes as it was.
    let mut shapes = StdRng::seed_from_u64(seed.wrapping_add(0x0005_c09e));
    let plan = app.ledger.program.plan(&app.ledger.program.default_plan).expect("the default plan");
    let mut wallet = Wallet::default();
    wallet.daily_free = plan.daily_free_credits;
    let mut model =
        Model { wallet, lot_ids: HashMap::new(), hold_ids: HashMap::new(), status: AccountStatus::Active, purchases: Vec::new() };
    // What the account's creation granted (arkain's monthly free credits).
    model.adopt_new_lots(&app, app.clock.now()).await;
    if let (Some(_), Some(rule)) = (plan.rollover, app.ledger.program.plan_credits) {
        // Where plan credits roll over, the account moves to the plan with the larger credits
        // and stays there: its first plan's lot is then of a plan it left, and ends whole.
        let now = app.clock.now();
        let better = app.ledger.program.plans.iter().filter(|p| p.rollover.is_some()).max_by_key(|p| p.monthly_credits).expect("a plan");
        app.ledger.change_plan("model", &better.code, "plan-0", now).await.expect("the plan changes");
        let rollover = better.rollover.expect("it rolls over");
        model.wallet.plan = Some(WalletPlan { code: better.code.clone(), anchor: now, schedule: rule.period, rollover });
        model.adopt_new_lots(&app, now).await;
    }
    // Each spend with its instant: a replay is of a key still kept (30 days by default).
    let mut spends: Vec<(String, Credits, Outcome, DateTime<Utc>)> = Vec::new();
    let mut covered = Covered::default();

    for step in 0..steps {
        let now = app.clock.now();
        let context = format!("{program}: seed {seed} step {step}");
        // arkain begins with its first purchase (the one with a bonus), then a hold (even
        // seeds) or a spend (odd seeds) of 60, which takes the 50 free credits and 10 of the
        // bonus, then a refund of it: every run meets a held or a spent bonus, whatever the
        // random steps after.
        let op = match (program, step) {
            ("arkain", 0) => 14,
            ("arkain", 1) if seed.is_multiple_of(2) => 16,
            ("arkain", 1) => 17,
            ("arkain", 2) => 15,
            // 18: an operator's void of a random lot; 19: an operator's debit, from a random lot or
            // in the program's order; 20: an operator's move of a random lot's expiry, later or
            // earlier (into the past too); each as often as a refund.
            // 21: a refund made in Stripe's dashboard, announced by its `charge.refunded`.
            _ => match rng.random_range(0..20) {
                16 => 18,
                17 => 19,
                18 => 20,
                19 => 21,
                op => op,
            },
        };
        if std::env::var_os("CREDITS_MODEL_TRACE").is_some() {
            eprintln!("{context}: op {op} at {now}; holds {:?}", model.wallet.holds);
        }
        match op {
            0..=2 => {
                let class = LotClass::ALL[rng.random_range(0..3)];
                let micros = rng.random_range(1..40_000_000i64);
                let expires_at = rng.random_bool(0.6).then(|| now + Duration::minutes(rng.random_range(1..120)));
                // A third of the grants name a priority, a few of them the same as the default.
                let priority = rng.random_bool(0.35).then(|| rng.random_range(40..=60));
                // A fifth start later (and expire later still, if they expire at all); a fifth are
                // scoped, half to the feature the model's spends and holds name, half to another
                // that only an operator's debit takes.
                let effective_at = shapes.random_bool(0.2).then(|| now + Duration::minutes(shapes.random_range(1..90)));
                let expires_at = match (effective_at, expires_at) {
                    (Some(start), Some(_)) => Some(start + Duration::minutes(shapes.random_range(1..120))),
                    (_, expires_at) => expires_at,
                };
                let features = shapes.random_bool(0.2).then(|| if shapes.random_bool(0.5) { "model" } else { "other" });
                let mut request = grant(micros, class, expires_at, format!("grant-{step}"));
                request.priority = priority;
                request.effective_at = effective_at;
                request.features = features.map(|f| vec![f.to_string(), "extra".to_string()]);
                let granted = app.ledger.grant(request, now).await;
                match granted {
                    Ok(receipt) => {
                        assert!(model.status.may_receive_credits(), "{context}: a grant to a {} account", model.status);
                        let wallet_id = model.wallet.grant(class, LotSource::Adjustment, Credits::from_micros(micros), now, expires_at);
                        let lot = model.wallet.lots.iter_mut().find(|l| l.id == wallet_id).expect("just granted");
                        if let Some(p) = priority {
                            lot.priority = Priority::new(p).expect("in range");
                            covered.prioritized += 1;
                        }
                        lot.effective_at = effective_at;
                        lot.features = features.map(|f| Features::new(vec![f.to_string(), "extra".to_string()]).expect("names"));
                        covered.upcoming += usize::from(effective_at.is_some());
                        covered.scoped += usize::from(features.is_some());
                        model.lot_ids.insert(wallet_id, receipt.lot_id);
                    }
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => {
                        assert!(!model.status.may_receive_credits(), "{context}")
                    }
                    Err(other) => panic!("{context}: grant: {other:?}"),
                }
            }
            3..=5 | 17 => {
                let amount = if op == 17 { Credits::from_whole(60) } else { Credits::from_micros(rng.random_range(1..30_000_000i64)) };
                let key = format!("spend-{step}");
                let stored = spend(&app, &key, amount, now).await;
                // Every spend request releases the account's lapsed holds first, refused or not.
                model.wallet.lapse(now);
                let expected = if model.status == AccountStatus::Active {
                    match model.wallet.spend(amount, &order, now, "model") {
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
                spends.push((key, amount, stored, now));
            }
            6 | 16 => {
                let amount = if op == 16 { Credits::from_whole(60) } else { Credits::from_micros(rng.random_range(1..20_000_000i64)) };
                let hold_for = Duration::minutes(rng.random_range(1..240));
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
                            metadata: metadata_for(&format!("hold-{step}")),
                        },
                        now,
                    )
                    .await;
                let expected = if model.status == AccountStatus::Active {
                    model.wallet.hold(amount, &order, now, now + hold_for, "model")
                } else {
                    assert!(matches!(held, Err(ServiceError::Refused(Refusal::AccountNotActive { .. }))), "{context}: hold: {held:?}");
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
                    (Err(ServiceError::Refused(Refusal::InsufficientCredits { available, .. })), Err(short)) => {
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
                    Err(ServiceError::Refused(Refusal::ReservationNotHeld { .. })) => Outcome::NotHeld,
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
                let (key, amount, first, _) = spends[rng.random_range(0..spends.len())].clone();
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
            11 if test_clock => {
                let to = now + Duration::minutes(rng.random_range(1..45));
                advance(&app, &mut model, now, to, &context, &mut covered).await;
            }
            11 => app.clock.set(now + Duration::minutes(rng.random_range(1..45))),
            12 | 13 if test_clock && model.wallet.plan.is_some() => {
                // To shortly before the month's end, the jobs run at each midnight on the way;
                // the next small advances cross the end, where plan lots roll over.
                let to = credits::ledger::time::next_month_start(now) - Duration::minutes(rng.random_range(5..30));
                if to > now {
                    advance(&app, &mut model, now, to, &context, &mut covered).await;
                    // The advance's purge forgets keys past their retention: those spends are
                    // no longer replays.
                    spends.retain(|(.., at)| to - *at < Duration::days(29));
                }
            }
            14 => {
                let credits = Credits::from_whole(rng.random_range(50..120));
                let key = format!("buy-{step}");
                let purchase = match app.ledger.purchase("model", None, Some(credits), metadata_for(&key), &key, now).await {
                    Ok(purchase) => purchase,
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => {
                        assert_ne!(model.status, AccountStatus::Active, "{context}");
                        continue_with(&app, &model, &context).await;
                        continue;
                    }
                    Err(other) => panic!("{context}: purchase: {other:?}"),
                };
                // Half are paid the portal's simulated way: the same rules must hold.
                let paid = if step % 2 == 0 {
                    app.ledger.simulate_payment(purchase.id, now).await
                } else {
                    app.ledger.confirm_purchase(purchase.id, &key, None, now).await
                }
                .expect(&context);
                let adopted = model.adopt_new_lots(&app, now).await;
                let wallet_id =
                    |stored: i64| adopted.iter().find(|(_, l)| l.lot.id == stored).map(|(w, _)| *w).expect("the purchase's lots");
                let paid_lot = wallet_id(paid.lot_id.expect("a paid purchase has its lot"));
                let bonus_lots = adopted
                    .iter()
                    .filter(|(_, l)| l.origin_kind.as_deref() == Some(BONUS_ORIGIN) && l.origin_id == Some(paid.id.to_string()))
                    .map(|(w, _)| *w)
                    .collect();
                assert_eq!(
                    adopted.len(),
                    1 + model.purchases.is_empty() as usize * usize::from(app.ledger.program.first_purchase_bonus.is_some()),
                    "{context}: a purchase's lots"
                );
                let terms = RefundTerms {
                    policy: app.ledger.program.refunds.policy,
                    billed_minor: paid.price_minor,
                    bought: credits,
                    paid_lot,
                    bonus_lots,
                };
                model.purchases.push(Bought { id: paid.id, terms, refunded: false, refunded_minor: 0 });
            }
            15 if !model.purchases.is_empty() => {
                let index = rng.random_range(0..model.purchases.len());
                let key = format!("refund-{step}");
                let stored = match app.ledger.refund_purchase(Requester::Operator, None, model.purchases[index].id, &key, None, now).await {
                    Ok(receipt) => Outcome::Refunded(Refunded {
                        refunded_minor: receipt.refunded_minor,
                        credits: receipt.credits,
                        revoked: receipt.revoked,
                    }),
                    Err(ServiceError::Refused(Refusal::Refund(refusal))) => Outcome::RefundRefused(refusal),
                    Err(other) => panic!("{context}: refund: {other:?}"),
                };
                let bought = &model.purchases[index];
                let bonus = &bought.terms.bonus_lots;
                let bonus_held = model.wallet.holds.iter().any(|h| h.open && h.parts.iter().any(|(lot, _)| bonus.contains(lot)));
                let bonus_spent = bonus.iter().any(|lot| model.wallet.taken.get(lot).is_some_and(|c| !c.is_zero()));
                let bought = &mut model.purchases[index];
                let expected = if bought.refunded {
                    Outcome::RefundRefused(RefundRefusal::NotPaid)
                } else {
                    match model.wallet.refund(&bought.terms, &order, now) {
                        Ok(refunded) => {
                            bought.refunded = true;
                            bought.refunded_minor = refunded.refunded_minor;
                            covered.held_bonus_refunds += usize::from(bonus_held);
                            covered.spent_bonus_refunds += usize::from(bonus_spent);
                            Outcome::Refunded(refunded)
                        }
                        Err(refusal) => Outcome::RefundRefused(refusal),
                    }
                };
                assert_eq!(stored, expected, "{context}: refund of purchase {}", bought.id);
            }
            21 if model.purchases.iter().any(|b| b.refunded_minor < b.terms.billed_minor) => {
                let open: Vec<usize> = (0..model.purchases.len())
                    .filter(|i| model.purchases[*i].refunded_minor < model.purchases[*i].terms.billed_minor)
                    .collect();
                let index = open[rng.random_range(0..open.len())];
                let (id, before, billed) =
                    (model.purchases[index].id, model.purchases[index].refunded_minor, model.purchases[index].terms.billed_minor);
                let total = rng.random_range(before + 1..=billed);
                let reference =
                    credits::store::purchases::by_id(&app.ledger.db, id).await.unwrap().and_then(|p| p.payment_reference).expect("paid");
                let body = serde_json::json!({ "id": format!("evt_model_{step}"), "object": "event", "type": "charge.refunded", "data": { "object": {
                    "id": format!("ch_{step}"), "object": "charge", "amount": billed, "amount_refunded": total,
                    "currency": app.ledger.program.currency.to_lowercase(), "payment_intent": reference } } });
                let event = credits::stripe::events::Event::parse(body.to_string().as_bytes()).unwrap();
                let stored = app.ledger.handle_stripe_event(&event, now).await.expect(&context);
                let bought = &mut model.purchases[index];
                match (stored, model.wallet.external_refund(&bought.terms, before, total, now)) {
                    (credits::service::stripe::Outcome::RefundApplied, Ok(_)) => {
                        bought.refunded = true;
                        bought.refunded_minor = total;
                        covered.dashboard_refunds += 1;
                    }
                    (credits::service::stripe::Outcome::NeedsAttention, Err(_)) => covered.dashboard_refusals += 1,
                    (stored, expected) => panic!("{context}: dashboard refund of purchase {id}: store {stored:?}, rules {expected:?}"),
                }
            }
            18 if !model.lot_ids.is_empty() => {
                let known: Vec<i64> = model.wallet.lots.iter().map(|l| l.id).filter(|id| model.lot_ids.contains_key(id)).collect();
                let wallet_id = known[rng.random_range(0..known.len())];
                let request = VoidRequest {
                    lot_id: model.lot_ids[&wallet_id],
                    reason: "model".into(),
                    idempotency_key: format!("void-{step}"),
                    actor: Some("model@ops".into()),
                };
                let stored = app.ledger.void_lot(request, now).await;
                // A void releases the account's lapsed holds first, refused or not.
                model.wallet.lapse(now);
                match (stored, model.wallet.void(wallet_id, now)) {
                    (Ok(receipt), Ok(voided)) => {
                        assert_eq!(receipt.voided, voided, "{context}: void of lot {wallet_id}");
                        covered.voids += 1;
                    }
                    (Err(ServiceError::Refused(Refusal::InvalidState { what })), Err(refusal)) => {
                        // The messages name the lot by its own id on each side: compare why.
                        let (stored, expected) = (what.as_str(), refusal.to_string());
                        let why = |m: &str| ["nothing remains", "expired at", "held by a reservation"].into_iter().find(|k| m.contains(k));
                        assert!(why(stored).is_some(), "{context}: {stored}");
                        assert_eq!(why(stored), why(&expected), "{context}: void of lot {wallet_id}: {stored} / {expected}");
                    }
                    (stored, expected) => panic!("{context}: void of lot {wallet_id}: store {stored:?}, rules {expected:?}"),
                }
            }
            19 => {
                let amount = Credits::from_micros(rng.random_range(1..25_000_000i64));
                let known: Vec<i64> = model.wallet.lots.iter().map(|l| l.id).filter(|id| model.lot_ids.contains_key(id)).collect();
                let from = (!known.is_empty() && rng.random_bool(0.5)).then(|| known[rng.random_range(0..known.len())]);
                let request = AdjustRequest {
                    account: "model".into(),
                    amount,
                    lot_id: from.map(|id| model.lot_ids[&id]),
                    reason: "model".into(),
                    idempotency_key: format!("adjust-{step}"),
                    actor: Some("model@ops".into()),
                };
                let stored = match app.ledger.adjust_credits(request, now).await {
                    Ok(receipt) => Outcome::Took(receipt.takes),
                    Err(ServiceError::Refused(Refusal::InsufficientCredits { available, .. })) => Outcome::Short { available },
                    Err(other) => panic!("{context}: adjust: {other:?}"),
                };
                let expected = match model.wallet.adjust_down(amount, from, &order, now) {
                    Ok(takes) => Outcome::Took(model.stored(&takes)),
                    Err(short) => Outcome::Short { available: short.available },
                };
                // A refused debit releases lapsed holds too (the model's adjust_down lapses first).
                assert_eq!(stored, expected, "{context}: debit of {amount} from {from:?}");
                covered.adjustments += usize::from(matches!(stored, Outcome::Took(_)));
            }
            20 if !model.lot_ids.is_empty() => {
                let known: Vec<i64> = model.wallet.lots.iter().map(|l| l.id).filter(|id| model.lot_ids.contains_key(id)).collect();
                let wallet_id = known[rng.random_range(0..known.len())];
                let to = now + Duration::minutes(rng.random_range(-60..240));
                let request = ExpiryRequest {
                    lot_id: model.lot_ids[&wallet_id],
                    expires_at: to,
                    reason: "model".into(),
                    idempotency_key: format!("expiry-{step}"),
                    actor: Some("model@ops".into()),
                };
                let stored = app.ledger.change_lot_expiry(request, now).await;
                // A change releases the account's lapsed holds first, refused or not.
                model.wallet.lapse(now);
                match (stored, model.wallet.change_expiry(wallet_id, to, now)) {
                    (Ok(receipt), Ok((change, written_off))) => {
                        assert_eq!((receipt.change, receipt.written_off), (change, written_off), "{context}: expiry of lot {wallet_id}");
                        covered.expiry_changes += 1;
                    }
                    (Err(ServiceError::Refused(Refusal::InvalidState { what })), Err(refusal)) => {
                        let (stored, expected) = (what.as_str(), refusal.to_string());
                        let why = |m: &str| {
                            ["expired at", "nothing remains", "already expires", "day's free", "starts at"]
                                .into_iter()
                                .find(|k| m.contains(k))
                        };
                        assert!(why(stored).is_some(), "{context}: {stored}");
                        assert_eq!(why(stored), why(&expected), "{context}: expiry of lot {wallet_id}: {stored} / {expected}");
                    }
                    (stored, expected) => panic!("{context}: expiry of lot {wallet_id}: store {stored:?}, rules {expected:?}"),
                }
            }
            _ => {
                // The workers' order: holds past their deadline, then lots past their expiry.
                let released = app.ledger.expire_reservations(now, 1000).await.expect(&context);
                assert_eq!(released as usize, model.wallet.lapse(now).len(), "{context}: holds released by the worker");
                let stored = app.ledger.expire_due(now, 1000).await.expect(&context);
                let carried_before = model.wallet.carried.len();
                let expected = model.wallet.expire(now);
                assert_eq!(stored.lots as usize, expected.len(), "{context}: lots written off");
                assert_eq!(stored.credits, expected.iter().map(|(_, c)| *c).sum::<Credits>(), "{context}: credits written off");
                let carried: Credits = model.wallet.carried[carried_before..].iter().map(|c| c.amount).sum();
                assert_eq!(stored.carried, carried, "{context}: credits carried over");
                covered.carried += model.wallet.carried.len() - carried_before;
                model.adopt_new_lots(&app, now).await;
            }
        }
        continue_with(&app, &model, &context).await;
    }
    app.assert_audit_clean().await;
    let refunded = || model.purchases.iter().filter(|p| p.refunded);
    covered.days_taken = model.wallet.days_written.len();
    covered.refunds = refunded().count();
    covered.bonus_refunds = refunded().filter(|p| !p.terms.bonus_lots.is_empty()).count();
    covered
}

/// A test clock's advance from `now` to `to`: it runs every job at each stop; the model mirrors
/// the two that touch this account's credits, in the jobs' order (expiry, with its rollovers,
/// then lapsed holds), and adopts what the plan grants at a month's start gave.
async fn advance(app: &TestApp, model: &mut Model, now: DateTime<Utc>, to: DateTime<Utc>, context: &str, covered: &mut Covered) {
    let report = app.ledger.advance_clock(Advance::To(to)).await.expect(context);
    let (mut expired, mut lapsed) = (0, 0);
    let carried_before = model.wallet.carried.len();
    for stop in stops(now, to) {
        expired += model.wallet.expire(stop).len();
        lapsed += model.wallet.lapse(stop).len();
        covered.midnights += usize::from(stop < to);
        covered.month_ends += usize::from(stop < to && stop == credits::ledger::time::next_month_start(stop - Duration::microseconds(1)));
    }
    let items = |job| report.jobs.iter().find(|(j, _)| *j == job).map_or(0, |(_, r)| r.items as usize);
    assert_eq!(items(Job::ExpireLots), expired, "{context}: lots written off by the advance");
    assert_eq!(items(Job::ExpireReservations), lapsed, "{context}: holds released by the advance");
    covered.carried += model.wallet.carried.len() - carried_before;
    covered.advances += 1;
    model.adopt_new_lots(app, to).await;
}

/// After every step: the same lots, the same cached balance, the same balance read, and the
/// same balance over time.
async fn continue_with(app: &TestApp, model: &Model, context: &str) {
    compare_lots(app, &model.wallet, &model.lot_ids, context).await;
    compare_reads(app, &model.wallet, app.clock.now(), context).await;
    compare_over_time(app, &model.wallet, app.clock.now(), context).await;
}

/// The newest entry recorded the balance the model holds, and `balance_at(now)` answers what a
/// read shows now, less the day's free credits not written yet (a read offers them; the
/// journal has them only once a spend takes from them).
async fn compare_over_time(app: &TestApp, wallet: &Wallet, now: DateTime<Utc>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let newest = Window { after: None, before: None, from_end: false, limit: 1 };
    let page = app.ledger.history_page(account.id, &Default::default(), &newest).await.unwrap();
    let recorded = page.items.first().map_or(0, |item| item.entry.balance_after_micros);
    assert_eq!(recorded, wallet.remaining().micros(), "{context}: newest entry's balance after");
    let at = app.ledger.balance_at(&account, now, now).await.unwrap().expect("the account exists");
    let offered = match wallet.daily_free {
        Some(amount) if !wallet.days_written.contains(&credits::ledger::time::day_of(now)) => amount,
        _ => Credits::ZERO,
    };
    assert_eq!(at.available, wallet.available(now).checked_sub(offered).unwrap(), "{context}: available at now");
    assert_eq!(at.held, wallet.held_at(now), "{context}: held at now");
}

fn grant(micros: i64, class: LotClass, expires_at: Option<DateTime<Utc>>, key: String) -> GrantRequest {
    GrantRequest {
        account: "model".into(),
        amount: Credits::from_micros(micros),
        class,
        source: LotSource::Adjustment,
        expires_at,
        valid_for: None,
        priority: None,
        effective_at: None,
        features: None,
        reason: None,
        metadata: metadata_for(&key),
        idempotency_key: key,
        actor: None,
    }
}

/// Metadata picked by the key (so a replay sends the same request): none for about a third of
/// the keys, else one to three pairs. It must never change an outcome, which the model checks.
fn metadata_for(key: &str) -> Option<Metadata> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let pick = hasher.finish();
    let pairs = (0..pick % 3).map(|i| (format!("k.{i}"), format!("{key} {}", pick >> (8 * i) & 0xff)));
    let pairs: Vec<_> = std::iter::once(("key".to_string(), key.to_string())).chain(pairs).collect();
    if pick.is_multiple_of(3) { None } else { Metadata::parse(pairs).expect("bounded metadata") }
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
        metadata: metadata_for(key),
    };
    // A third of the spends go the bulk way (`spend_many`, what `spendCreditsBatch` runs), twice
    // in one batch: the repeat must replay the first outcome, and the first is held to the rules
    // like any spend.
    let answer = if key.bytes().map(u64::from).sum::<u64>().is_multiple_of(3) {
        let mut outcomes = app.ledger.spend_many(vec![request.clone(), request], now).await;
        let (repeat, first) = (outcomes.pop().expect("two outcomes"), outcomes.pop().expect("two outcomes"));
        assert_eq!(format!("{repeat:?}"), format!("{first:?}"), "{key}: a key repeated in a batch replays");
        first
    } else {
        app.ledger.spend(request, now).await
    };
    match answer {
        Ok(receipt) => Outcome::Took(receipt.takes.iter().map(|t| (t.lot_id, t.amount)).collect()),
        Err(ServiceError::Refused(Refusal::InsufficientCredits { available, .. })) => Outcome::Short { available },
        Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => Outcome::NotActive,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

async fn compare_lots(app: &TestApp, wallet: &Wallet, lot_ids: &HashMap<i64, i64>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let stored = app.ledger.lots_page(account.id, true, &EVERY_LOT).await.unwrap().items;
    assert_eq!(stored.len(), wallet.lots.len(), "{context}: number of lots");
    for lot in &wallet.lots {
        let row = &stored.iter().find(|r| r.lot.id == lot_ids[&lot.id]).expect("every lot is stored").lot;
        assert_eq!(row.remaining, lot.remaining, "{context}: lot {}", lot.id);
        assert_eq!(row.expires_at, lot.expires_at, "{context}: lot {} expiry", lot.id);
        assert_eq!((&row.effective_at, &row.features), (&lot.effective_at, &lot.features), "{context}: lot {} start and scope", lot.id);
    }
    assert_eq!(account.balance, wallet.remaining(), "{context}: cached balance");
}

/// A read at `now` shows what the rules say, lapsed holds counted as available before any
/// worker or spend has released them (domain.md §5).
async fn compare_reads(app: &TestApp, wallet: &Wallet, now: DateTime<Utc>, context: &str) {
    let account = app.ledger.account("model").await.unwrap();
    let view = app.ledger.balance(&account, now).await.unwrap();
    assert_eq!(view.available, wallet.available(now), "{context}: available");
    assert_eq!(view.held, wallet.held_at(now), "{context}: held");
    let upcoming: Credits = wallet.lots.iter().filter(|l| l.is_upcoming(now) && !l.is_expired(now)).map(|l| l.remaining).sum();
    assert_eq!(view.upcoming.iter().map(|u| u.1).sum::<Credits>(), upcoming, "{context}: upcoming");
    // The feature the model uses: what is scoped to others is left out of what it may spend.
    let mut lapsed = wallet.clone();
    lapsed.lapse(now);
    let offered = wallet.available(now).checked_sub(credits::ledger::balance(&lapsed.lots, now)).expect("the day's part");
    let for_model = available_for(&lapsed.lots, now, Purpose::Feature("model")).checked_add(offered).unwrap();
    assert_eq!(view.available_for("model"), for_model, "{context}: available for the model's feature");
}

on_both!(store_and_rules_agree_lot_by_lot);

// ---------------------------------------------------------------------------------------------
// Gifts and spend limits (issue 26), among several accounts.
//
// Three accounts on the gifts example program (`[gifts]`: 500 credits and 5 gifts per sender and
// UTC day, 300 per gift) take random grants (paid, promotional, free; some expiring, some scoped),
// spends and holds for two features, captures and releases, gifts in every direction (and replays
// of their keys), spend limits set and cleared (per feature or for every feature, per day or
// month, and a maximum per charge), status changes, clock moves across midnights and a month's
// end, and the workers. The model is a `Wallet` per account plus its own bookkeeping of the
// limits' counters (what a spend or hold counted, what a settled or lapsed hold gives back, to
// the periods it was counted in) and of what each sender gave per day. It predicts every
// outcome (a gift's parts and expiries, each refusal with its numbers), every lot, balance, read
// and limit state; the store must agree after every step.
// ---------------------------------------------------------------------------------------------

/// Gifts on, with per-day limits (`[gifts]`).
const GIFTS_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");
const PARTIES: [&str; 3] = ["m0", "m1", "m2"];
const FEATURES: [&str; 2] = ["model", "other"];

/// A limit's counter in the model: account index, scope ("*" for every feature), period key.
type CounterKey = (usize, String, String);

/// What a charge (a spend or a hold) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Charge {
    Took(Vec<(i64, Credits)>),
    Short { available: Credits },
    NotActive,
    Limited(Refusal),
}

/// What a gift came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Given {
    /// (sender's stored lot, amount, expiry kept) per part, and the sender's balance after.
    Gave {
        parts: Vec<(i64, Credits, Option<DateTime<Utc>>)>,
        balance_after: Credits,
    },
    BadInput,
    NotActive(AccountStatus),
    DayLimit(String),
    Short {
        requested: Credits,
        giftable: Credits,
    },
}

struct Party {
    wallet: Wallet,
    lot_ids: HashMap<i64, i64>,
    hold_ids: HashMap<i64, i64>,
    status: AccountStatus,
    /// The limits as set: (feature, period, max), in the order the rule reports them.
    limits: Vec<(Option<String>, credits::ledger::spend_limits::Period, Credits)>,
    max_per_charge: Option<Credits>,
    /// wallet hold id -> the counters it added to and what it added.
    counted: HashMap<i64, (Vec<CounterKey>, Credits)>,
}

#[derive(Default)]
struct Book {
    usage: HashMap<CounterKey, Credits>,
    /// (sender, UTC day) -> credits given and gifts made that day.
    sent: HashMap<(usize, chrono::NaiveDate), (Credits, u32)>,
}

#[derive(Debug, Default)]
struct GiftsCovered {
    gifts: usize,
    gifts_with_expiry: usize,
    gift_replays: usize,
    day_credit_limits: usize,
    day_count_limits: usize,
    gifts_short: usize,
    gifts_to_suspended: usize,
    bad_gifts: usize,
    day_limits_hit: usize,
    month_limits_hit: usize,
    charge_limits_hit: usize,
    holds_limited: usize,
    rooms_given_back: usize,
    given_back_after_midnight: usize,
}

fn period_key(period: credits::ledger::spend_limits::Period, now: DateTime<Utc>) -> String {
    match period {
        credits::ledger::spend_limits::Period::Day => now.format("%Y-%m-%d").to_string(),
        credits::ledger::spend_limits::Period::Month => now.format("%Y-%m").to_string(),
    }
}

fn period_end(period: credits::ledger::spend_limits::Period, now: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Datelike;
    let day = now.date_naive();
    let next = match period {
        credits::ledger::spend_limits::Period::Day => day.succ_opt().unwrap(),
        credits::ledger::spend_limits::Period::Month if day.month() == 12 => chrono::NaiveDate::from_ymd_opt(day.year() + 1, 1, 1).unwrap(),
        credits::ledger::spend_limits::Period::Month => chrono::NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1).unwrap(),
    };
    next.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

impl Book {
    fn used(&self, key: &CounterKey) -> Credits {
        self.usage.get(key).copied().unwrap_or(Credits::ZERO)
    }

    /// A charge of `amount` for `feature` on `party`'s account: the counters it adds to, or the
    /// refusal naming the first limit it passes (the per-charge maximum first).
    fn check(&self, index: usize, party: &Party, feature: &str, amount: Credits, now: DateTime<Utc>) -> Result<Vec<CounterKey>, Refusal> {
        if let Some(max) = party.max_per_charge
            && amount > max
        {
            return Err(Refusal::SpendLimitReached {
                feature: None,
                period: "CHARGE".into(),
                limit: max,
                used: Credits::ZERO,
                requested: amount,
                resets_at: None,
            });
        }
        let mut counters = Vec::new();
        for (scope_feature, period, max) in &party.limits {
            if scope_feature.as_deref().is_some_and(|f| f != feature) {
                continue;
            }
            let key = (index, scope_feature.clone().unwrap_or_else(|| "*".into()), period_key(*period, now));
            let used = self.used(&key);
            if used.checked_add(amount).unwrap() > *max {
                return Err(Refusal::SpendLimitReached {
                    feature: scope_feature.clone(),
                    period: match period {
                        credits::ledger::spend_limits::Period::Day => "DAY".into(),
                        credits::ledger::spend_limits::Period::Month => "MONTH".into(),
                    },
                    limit: *max,
                    used,
                    requested: amount,
                    resets_at: Some(period_end(*period, now)),
                });
            }
            counters.push(key);
        }
        Ok(counters)
    }

    fn add(&mut self, counters: &[CounterKey], amount: Credits) {
        for key in counters {
            let used = self.usage.entry(key.clone()).or_insert(Credits::ZERO);
            *used = used.checked_add(amount).unwrap();
        }
    }

    /// A hold that ended gives back what it counted less what was captured, to the periods it
    /// was counted in.
    fn give_back(&mut self, party: &mut Party, hold_id: i64, captured: Credits, now: DateTime<Utc>, covered: &mut GiftsCovered) {
        let Some((counters, amount)) = party.counted.remove(&hold_id) else { return };
        let back = amount.checked_sub(captured).unwrap();
        if back.is_zero() {
            return;
        }
        covered.rooms_given_back += 1;
        for key in &counters {
            covered.given_back_after_midnight +=
                usize::from(key.2.len() == 10 && key.2 != period_key(credits::ledger::spend_limits::Period::Day, now));
            let used = self.usage.get_mut(key).expect("a hold's counter exists");
            *used = used.checked_sub(back).unwrap();
        }
    }

    /// The account's holds past their deadline end as the store releases them, giving their room back.
    fn lapse(&mut self, party: &mut Party, now: DateTime<Utc>, covered: &mut GiftsCovered) -> usize {
        let lapsed = party.wallet.lapse(now);
        for (hold_id, _) in &lapsed {
            self.give_back(party, *hold_id, Credits::ZERO, now, covered);
        }
        lapsed.len()
    }
}

async fn gifts_and_spend_limits_agree(backend: Backend) {
    let (seeds, steps) = (setting("CREDITS_MODEL_SEEDS", SEEDS), setting("CREDITS_MODEL_STEPS", 200));
    let mut covered = GiftsCovered::default();
    for seed in 0..seeds {
        run_gifts(backend, seed, steps as usize, &mut covered).await;
    }
    eprintln!("gifts and limits model on {backend:?}: {covered:?}");
    let c = &covered;
    assert!(c.gifts > 0 && c.gifts_with_expiry > 0 && c.gift_replays > 0 && c.bad_gifts > 0, "{c:?}");
    assert!(c.day_credit_limits > 0 && c.day_count_limits > 0 && c.gifts_short > 0 && c.gifts_to_suspended > 0, "{c:?}");
    assert!(c.day_limits_hit > 0 && c.month_limits_hit > 0 && c.charge_limits_hit > 0 && c.holds_limited > 0, "{c:?}");
    assert!(c.rooms_given_back > 0 && c.given_back_after_midnight > 0, "{c:?}");
}

async fn run_gifts(backend: Backend, seed: u64, steps: usize, covered: &mut GiftsCovered) {
    use credits::ledger::gift::DayLimit;
    use credits::ledger::spend_limits::{Limit, Limits, Period};
    use credits::service::gifts::GiftRequest;
    use credits::service::spend_limits::{LimitInput, SetSpendLimitsRequest};

    let app = TestApp::spawn_with(backend, GIFTS_PROGRAM).await;
    // Two days before a month's end: the runs cross midnights and the month.
    app.clock.set("2026-02-26T08:00:00Z".parse().unwrap());
    let gift_rules = app.ledger.program.gifts.expect("the program has gifts");
    let order = app.ledger.program.consumption_order.clone();
    let plan = app.ledger.program.plan(&app.ledger.program.default_plan).expect("the default plan");
    let mut parties = Vec::new();
    for name in PARTIES {
        app.create_account(name).await;
        let account = app.ledger.account(name).await.unwrap();
        let stored = app.ledger.lots_page(account.id, true, &EVERY_LOT).await.unwrap().items;
        assert!(stored.is_empty(), "the gifts program grants nothing at sign-up");
        let mut wallet = Wallet::default();
        wallet.daily_free = plan.daily_free_credits;
        parties.push(Party {
            wallet,
            lot_ids: HashMap::new(),
            hold_ids: HashMap::new(),
            status: AccountStatus::Active,
            limits: Vec::new(),
            max_per_charge: None,
            counted: HashMap::new(),
        });
    }
    let mut book = Book::default();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x61f7));
    // Each account starts with paid credits and limits, so that holds are counted and gifts
    // made from the first steps; the random steps change both.
    for (i, name) in PARTIES.into_iter().enumerate() {
        let now = app.clock.now();
        let mut request = grant(300_000_000, LotClass::Paid, None, format!("start-{name}"));
        (request.account, request.metadata) = (name.into(), None);
        let receipt = app.ledger.grant(request, now).await.expect("the first grant");
        let id = parties[i].wallet.grant(LotClass::Paid, LotSource::Adjustment, Credits::from_whole(300), now, None);
        parties[i].lot_ids.insert(id, receipt.lot_id);
        let limits = vec![
            LimitInput { feature: None, period: Period::Day, max: Credits::from_whole(rng.random_range(100..300)) },
            LimitInput { feature: Some("model".into()), period: Period::Month, max: Credits::from_whole(rng.random_range(300..900)) },
        ];
        let request = SetSpendLimitsRequest { account: name.into(), limits: limits.clone(), max_per_charge: None, idempotency_key: None };
        app.ledger.set_spend_limits(request, now).await.expect("limits are set");
        let rules = limits.iter().map(|l| Limit { feature: l.feature.clone(), period: l.period, max: l.max }).collect();
        let ordered = Limits::new(rules, None).expect("valid limits");
        parties[i].limits = ordered.limits().iter().map(|l| (l.feature.clone(), l.period, l.max)).collect();
    }
    // Gifts made, with their request and first outcome, for replays.
    let mut gifts: Vec<(GiftRequest, Given)> = Vec::new();

    for step in 0..steps {
        let now = app.clock.now();
        let context = format!("gifts: seed {seed} step {step} at {now}");
        let i = rng.random_range(0..PARTIES.len());
        let name = PARTIES[i];
        let op = match rng.random_range(0..18) {
            17 => 7,
            op => op,
        };
        if std::env::var_os("CREDITS_MODEL_TRACE").is_some() {
            eprintln!("{context}: op {op} on {name}");
        }
        match op {
            0 | 1 => {
                let class = [LotClass::Paid, LotClass::Paid, LotClass::Paid, LotClass::Promotional, LotClass::Free][rng.random_range(0..5)];
                let micros = rng.random_range(20_000_000..400_000_000i64);
                let expires_at = rng.random_bool(0.5).then(|| now + Duration::minutes(rng.random_range(30..4000)));
                let scoped = rng.random_bool(0.15);
                let mut request = grant(micros, class, expires_at, format!("grant-{step}"));
                request.account = name.into();
                request.metadata = None;
                request.features = scoped.then(|| vec!["model".to_string()]);
                match app.ledger.grant(request, now).await {
                    Ok(receipt) => {
                        let party = &mut parties[i];
                        assert!(party.status.may_receive_credits(), "{context}: a grant to a {} account", party.status);
                        let id = party.wallet.grant(class, LotSource::Adjustment, Credits::from_micros(micros), now, expires_at);
                        if scoped {
                            let lot = party.wallet.lots.iter_mut().find(|l| l.id == id).unwrap();
                            lot.features = Some(Features::new(vec!["model".to_string()]).unwrap());
                        }
                        party.lot_ids.insert(id, receipt.lot_id);
                    }
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => {
                        assert!(!parties[i].status.may_receive_credits(), "{context}")
                    }
                    Err(other) => panic!("{context}: grant: {other:?}"),
                }
            }
            2..=4 => {
                let feature = FEATURES[rng.random_range(0..2)];
                let amount = Credits::from_micros(rng.random_range(1..120_000_000i64));
                let key = format!("spend-{step}");
                let request = SpendRequest {
                    account: name.into(),
                    amount: Some(amount),
                    price: None,
                    idempotency_key: key,
                    feature: feature.into(),
                    model: None,
                    reason: None,
                    metadata: None,
                };
                let stored = match app.ledger.spend(request, now).await {
                    Ok(receipt) => Charge::Took(receipt.takes.iter().map(|t| (t.lot_id, t.amount)).collect()),
                    Err(ServiceError::Refused(Refusal::InsufficientCredits { available, .. })) => Charge::Short { available },
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => Charge::NotActive,
                    Err(ServiceError::Refused(refusal @ Refusal::SpendLimitReached { .. })) => Charge::Limited(refusal),
                    Err(other) => panic!("{context}: spend: {other:?}"),
                };
                // A spend releases the account's lapsed holds first, refused or not.
                let party = &mut parties[i];
                book.lapse(party, now, covered);
                let expected = if !party.status.may_be_charged_for(feature) {
                    Charge::NotActive
                } else {
                    match book.check(i, party, feature, amount, now) {
                        Err(refusal) => Charge::Limited(refusal),
                        Ok(counters) => match party.wallet.spend(amount, &order, now, feature) {
                            Ok(takes) => {
                                book.add(&counters, amount);
                                Charge::Took(takes.iter().map(|t| (party.lot_ids[&t.lot_id], t.amount)).collect())
                            }
                            Err(short) => Charge::Short { available: short.available },
                        },
                    }
                };
                note_limit(&expected, covered, false);
                assert_eq!(stored, expected, "{context}: spend of {amount} for {feature} by {name}");
            }
            5 | 6 => {
                let feature = FEATURES[rng.random_range(0..2)];
                let amount = Credits::from_micros(rng.random_range(1..100_000_000i64));
                // Some holds outlive a midnight: settled the next day, they give the room back
                // to the day they were counted in.
                let hold_for = Duration::minutes(rng.random_range(10..2000));
                let request = ReserveRequest {
                    account: name.into(),
                    amount,
                    idempotency_key: format!("hold-{step}"),
                    feature: feature.into(),
                    model: None,
                    reason: None,
                    hold_seconds: Some(hold_for.num_seconds()),
                    metadata: None,
                };
                let mut reservation = None;
                let stored = match app.ledger.reserve(request, now).await {
                    Ok(hold) => {
                        reservation = Some(hold.reservation_id);
                        Charge::Took(hold.takes.iter().map(|t| (t.lot_id, t.amount)).collect())
                    }
                    Err(ServiceError::Refused(Refusal::InsufficientCredits { available, .. })) => Charge::Short { available },
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => Charge::NotActive,
                    Err(ServiceError::Refused(refusal @ Refusal::SpendLimitReached { .. })) => Charge::Limited(refusal),
                    Err(other) => panic!("{context}: hold: {other:?}"),
                };
                let party = &mut parties[i];
                let expected = if !party.status.may_be_charged_for(feature) {
                    // Refused before the account's credits are touched: nothing lapses.
                    Charge::NotActive
                } else {
                    // Lapsed holds first (their room too), then the limits, then the credits.
                    book.lapse(party, now, covered);
                    match book.check(i, party, feature, amount, now) {
                        Err(refusal) => Charge::Limited(refusal),
                        Ok(counters) => match party.wallet.hold(amount, &order, now, now + hold_for, feature) {
                            Ok((hold_id, takes)) => {
                                book.add(&counters, amount);
                                if !counters.is_empty() {
                                    party.counted.insert(hold_id, (counters, amount));
                                }
                                party.hold_ids.insert(hold_id, reservation.unwrap_or_default());
                                Charge::Took(takes.iter().map(|t| (party.lot_ids[&t.lot_id], t.amount)).collect())
                            }
                            Err(short) => Charge::Short { available: short.available },
                        },
                    }
                };
                note_limit(&expected, covered, true);
                assert_eq!(stored, expected, "{context}: hold of {amount} for {feature} by {name}");
            }
            7 | 8 if !parties[i].wallet.holds.is_empty() => {
                let party = &mut parties[i];
                let hold = party.wallet.holds[rng.random_range(0..party.wallet.holds.len())].clone();
                let reservation = party.hold_ids[&hold.id].to_string();
                let key = format!("settle-{step}");
                let capture = rng.random_bool(0.5).then(|| Credits::from_micros(rng.random_range(0..=hold.amount().micros())));
                let stored = match capture {
                    Some(amount) => app.ledger.capture(&reservation, amount, &key, now).await,
                    None => app.ledger.release(&reservation, &key, now).await,
                };
                let stored = match stored {
                    Ok(s) => Outcome::Settled(Settled { captured: s.captured, released: s.released, expired: s.expired }),
                    Err(ServiceError::Refused(Refusal::ReservationNotHeld { .. })) => Outcome::NotHeld,
                    Err(other) => panic!("{context}: settle: {other:?}"),
                };
                book.lapse(party, now, covered);
                let expected = match party.wallet.settle(hold.id, capture, now) {
                    Ok(settled) => {
                        book.give_back(party, hold.id, settled.captured, now, covered);
                        Outcome::Settled(settled)
                    }
                    Err(NotHeld) => Outcome::NotHeld,
                };
                assert_eq!(stored, expected, "{context}: settle {capture:?} of hold {}", hold.id);
            }
            9..=11 => {
                // Mostly to another account; now and then to the sender's own (bad input).
                let to = if rng.random_bool(0.05) { i } else { (i + rng.random_range(1..PARTIES.len())) % PARTIES.len() };
                // Mostly small gifts, so that a day meets its count; some large, past the
                // day's credits or the per-gift maximum.
                let most = if rng.random_bool(0.5) { 60_000_000 } else { 320_000_000i64 };
                let amount = Credits::from_micros(rng.random_range(1..most));
                let request =
                    GiftRequest { from: name.into(), to: PARTIES[to].into(), amount, note: None, idempotency_key: format!("gift-{step}") };
                let receipt = app.ledger.gift(request.clone(), now).await;
                let stored = match &receipt {
                    Ok(receipt) => Given::Gave {
                        parts: receipt.lots.iter().map(|l| (l.from_lot_id, l.amount, l.expires_at)).collect(),
                        balance_after: receipt.balance_after,
                    },
                    Err(ServiceError::BadInput(_)) => Given::BadInput,
                    Err(ServiceError::Refused(Refusal::AccountNotActive { status })) => Given::NotActive(*status),
                    Err(ServiceError::Refused(Refusal::LimitReached { what })) => Given::DayLimit(what.clone()),
                    Err(ServiceError::Refused(Refusal::GiftShort { requested, giftable })) => {
                        Given::Short { requested: *requested, giftable: *giftable }
                    }
                    Err(other) => panic!("{context}: gift: {other:?}"),
                };
                let day = now.date_naive();
                let (sent, count) = book.sent.get(&(i, day)).copied().unwrap_or((Credits::ZERO, 0));
                let resets_at = period_end(Period::Day, now);
                let expected = if to == i || gift_rules.max_per_gift.is_some_and(|max| amount > max) {
                    covered.bad_gifts += 1;
                    Given::BadInput
                } else if parties[i].status != AccountStatus::Active {
                    Given::NotActive(parties[i].status)
                } else if !parties[to].status.may_receive_credits() {
                    covered.gifts_to_suspended += 1;
                    Given::NotActive(parties[to].status)
                } else if let Some(max) = gift_rules.daily_count.filter(|max| count >= *max) {
                    covered.day_count_limits += 1;
                    Given::DayLimit(DayLimit::Count { max, resets_at }.to_string())
                } else if sent.checked_add(amount).unwrap() > gift_rules.daily_limit {
                    covered.day_credit_limits += 1;
                    let left = gift_rules.daily_limit.checked_sub(sent).unwrap();
                    Given::DayLimit(DayLimit::Credits { limit: gift_rules.daily_limit, left, resets_at }.to_string())
                } else {
                    // Under both accounts' locks: the sender's lapsed holds are released first.
                    book.lapse(&mut parties[i], now, covered);
                    match parties[i].wallet.gift_out(amount, &order, now) {
                        Ok(parts) => {
                            let made = parties[to].wallet.gift_in(&parts, now);
                            let Ok(receipt) = &receipt else { panic!("{context}: the rules gave {parts:?}, the store {stored:?}") };
                            assert_eq!(made.len(), receipt.lots.len(), "{context}: the recipient's lots");
                            for (wallet_id, lot) in made.iter().zip(&receipt.lots) {
                                parties[to].lot_ids.insert(*wallet_id, lot.lot_id);
                            }
                            book.sent.insert((i, day), (sent.checked_add(amount).unwrap(), count + 1));
                            covered.gifts += 1;
                            covered.gifts_with_expiry += usize::from(parts.iter().any(|p| p.expires_at.is_some()));
                            let sender = &parties[i];
                            Given::Gave {
                                parts: parts.iter().map(|p| (sender.lot_ids[&p.from_lot], p.amount, p.expires_at)).collect(),
                                balance_after: credits::ledger::balance(&sender.wallet.lots, now),
                            }
                        }
                        Err(short) => {
                            covered.gifts_short += 1;
                            Given::Short { requested: amount, giftable: short.available }
                        }
                    }
                };
                assert_eq!(stored, expected, "{context}: gift of {amount} from {name} to {}", PARTIES[to]);
                if expected != Given::BadInput {
                    gifts.push((request, stored));
                }
            }
            12 if !gifts.is_empty() => {
                // A replay, possibly on another day and after statuses changed: the first
                // outcome, and nothing moves.
                let (request, first) = gifts[rng.random_range(0..gifts.len())].clone();
                let again = match app.ledger.gift(request.clone(), now).await {
                    Ok(receipt) => Given::Gave {
                        parts: receipt.lots.iter().map(|l| (l.from_lot_id, l.amount, l.expires_at)).collect(),
                        balance_after: receipt.balance_after,
                    },
                    Err(ServiceError::Refused(Refusal::AccountNotActive { status })) => Given::NotActive(status),
                    Err(ServiceError::Refused(Refusal::LimitReached { what })) => Given::DayLimit(what),
                    Err(ServiceError::Refused(Refusal::GiftShort { requested, giftable })) => Given::Short { requested, giftable },
                    Err(other) => panic!("{context}: gift replay: {other:?}"),
                };
                assert_eq!(again, first, "{context}: replay of {}", request.idempotency_key);
                covered.gift_replays += 1;
            }
            13 => {
                let mut limits = Vec::new();
                let mut max_per_charge = None;
                if rng.random_bool(0.8) {
                    let candidates = [
                        (Some("model"), Period::Day),
                        (Some("model"), Period::Month),
                        (None, Period::Day),
                        (None, Period::Month),
                        (Some("other"), Period::Day),
                    ];
                    for (feature, period) in candidates {
                        if rng.random_bool(0.4) {
                            let max = Credits::from_whole(rng.random_range(20..400));
                            limits.push(LimitInput { feature: feature.map(str::to_string), period, max });
                        }
                    }
                    max_per_charge = rng.random_bool(0.3).then(|| Credits::from_whole(rng.random_range(30..150)));
                }
                let request = SetSpendLimitsRequest {
                    account: name.into(),
                    limits: limits.clone(),
                    max_per_charge,
                    idempotency_key: rng.random_bool(0.5).then(|| format!("limits-{step}")),
                };
                let party = &mut parties[i];
                match app.ledger.set_spend_limits(request, now).await {
                    Ok(_) => {
                        assert!(party.status.may_receive_credits(), "{context}: limits set on a {} account", party.status);
                        // The rule's one order: scoped to a feature first, by name, day before month.
                        let rules = limits.iter().map(|l| Limit { feature: l.feature.clone(), period: l.period, max: l.max }).collect();
                        let ordered = Limits::new(rules, max_per_charge).expect("valid limits");
                        party.limits = ordered.limits().iter().map(|l| (l.feature.clone(), l.period, l.max)).collect();
                        party.max_per_charge = max_per_charge;
                    }
                    Err(ServiceError::Refused(Refusal::AccountNotActive { .. })) => {
                        assert!(!party.status.may_receive_credits(), "{context}")
                    }
                    Err(other) => panic!("{context}: set limits: {other:?}"),
                }
            }
            14 => app.clock.set(now + Duration::minutes(rng.random_range(1..300))),
            15 => {
                let status = match rng.random_range(0..8) {
                    0 => AccountStatus::Suspended,
                    1 => AccountStatus::Inactive,
                    _ => AccountStatus::Active,
                };
                app.ledger.set_status(name, status).await.expect(&context);
                parties[i].status = status;
            }
            _ => {
                // The workers: holds past their deadline (their room back), then lots past expiry.
                let released = app.ledger.expire_reservations(now, 1000).await.expect(&context);
                let lapsed: usize = parties.iter_mut().map(|p| book.lapse(p, now, covered)).sum();
                assert_eq!(released as usize, lapsed, "{context}: holds released by the worker");
                let stored = app.ledger.expire_due(now, 1000).await.expect(&context);
                let expired: Vec<(i64, Credits)> = parties.iter_mut().flat_map(|p| p.wallet.expire(now)).collect();
                assert_eq!(stored.lots as usize, expired.len(), "{context}: lots written off");
                assert_eq!(stored.credits, expired.iter().map(|(_, c)| *c).sum::<Credits>(), "{context}: credits written off");
            }
        }
        for (index, party) in parties.iter().enumerate() {
            compare_party(&app, index, party, &book, &format!("{context}, {}", PARTIES[index])).await;
        }
    }
    app.assert_audit_clean().await;
}

fn note_limit(outcome: &Charge, covered: &mut GiftsCovered, hold: bool) {
    if let Charge::Limited(Refusal::SpendLimitReached { period, .. }) = outcome {
        match period.as_str() {
            "DAY" => covered.day_limits_hit += 1,
            "MONTH" => covered.month_limits_hit += 1,
            _ => covered.charge_limits_hit += 1,
        }
        covered.holds_limited += usize::from(hold);
    }
}

/// One account: its lots, cached balance and reads as the rules have them, and its spend limits
/// with what each one's current period counted.
async fn compare_party(app: &TestApp, index: usize, party: &Party, book: &Book, context: &str) {
    let now = app.clock.now();
    let account = app.ledger.account(PARTIES[index]).await.unwrap();
    let stored = app.ledger.lots_page(account.id, true, &EVERY_LOT).await.unwrap().items;
    assert_eq!(stored.len(), party.wallet.lots.len(), "{context}: number of lots");
    for lot in &party.wallet.lots {
        let row = &stored.iter().find(|r| r.lot.id == party.lot_ids[&lot.id]).expect("every lot is stored").lot;
        assert_eq!(
            (row.remaining, row.expires_at, row.source, row.class),
            (lot.remaining, lot.expires_at, lot.source, lot.class),
            "{context}: lot {}",
            lot.id
        );
        assert_eq!(row.features, lot.features, "{context}: lot {} scope", lot.id);
    }
    assert_eq!(account.balance, party.wallet.remaining(), "{context}: cached balance");
    let view = app.ledger.balance(&account, now).await.unwrap();
    assert_eq!((view.available, view.held), (party.wallet.available(now), party.wallet.held_at(now)), "{context}: balance read");

    let limits = app.ledger.spend_limits(account.id, now).await.unwrap();
    let expected: Vec<_> = party
        .limits
        .iter()
        .map(|(feature, period, max)| {
            let used = book.used(&(index, feature.clone().unwrap_or_else(|| "*".into()), period_key(*period, now)));
            let remaining = max.checked_sub(used).filter(|r| !r.micros().is_negative()).unwrap_or(Credits::ZERO);
            (feature.clone(), *period, *max, used, remaining, period_end(*period, now), used > *max)
        })
        .collect();
    let shown: Vec<_> =
        limits.limits.iter().map(|l| (l.feature.clone(), l.period, l.max, l.used, l.remaining, l.resets_at, l.exceeded)).collect();
    assert_eq!(shown, expected, "{context}: spend limits");
    assert_eq!(limits.max_per_charge, party.max_per_charge, "{context}: maximum per charge");
}

on_both!(gifts_and_spend_limits_agree);
