//! Bounded fuzzing, inside the normal suite: proptest runners looped until a wall-clock budget
//! (`CREDITS_FUZZ_SECONDS`, 10 s per target by default) is spent, counting cases.
//!
//! - `domain_rules`: the pure rules of `credits::ledger`. Random operation sequences on a wallet
//!   against an independent model of the order of consumption (conservation, no negative lot,
//!   a refusal changes nothing); amounts parsed from arbitrary strings; prices, reservations,
//!   refunds and validities on arbitrary inputs within their types (never a panic, exact where
//!   exactness is promised, monotonic where a bigger use must not cost less).
//! - `graphql_requests`: arbitrary bodies POSTed to a real server's `/graphql`: bytes, JSON,
//!   GraphQL documents with random, deep and mutated selections and garbage variables, every
//!   role. Never a 5xx, never a dropped connection, every error with `extensions.code`; the
//!   audit is clean afterwards.

use crate::support::{Backend, LEDGER_PROGRAM, TestApp};
use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use credits::ledger::amount::{AmountError, MAX_OPERATION_MICROS};
use credits::ledger::pricing::{self, Catalog, CatalogEntry, CountOption, LengthOption, QuoteOptions, ResolutionLevel, ResolutionOption};
use credits::ledger::time::Validity;
use credits::ledger::wallet::Wallet;
use credits::ledger::{ConsumptionOrder, Credits, LotClass, LotSource, balance};
use credits::program::Program;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::cell::Cell;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A string strategy from a regex compiled once (a `&str` strategy compiles it for every value).
fn re(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("a valid regex")
}

/// The wall-clock budget of each fuzz target.
fn budget() -> Duration {
    let seconds = std::env::var("CREDITS_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(seconds.max(0.0))
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // Runs are bounded by time and report their failing input; nothing is written to disk.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_shrink_time: 20_000,
        ..Config::default()
    })
}

/// Runs one round of a target's cases, counting them.
type Round<'a> = Box<dyn FnMut(&Cell<u64>) + 'a>;

/// One named property, run in rounds of `runner`'s cases.
struct Target<'a> {
    name: &'static str,
    round: Round<'a>,
    cases: Cell<u64>,
    time: Duration,
}

fn target<'a, S: Strategy + 'a>(
    name: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError> + 'a,
) -> Target<'a> {
    let mut master = runner(cases);
    let round = move |count: &Cell<u64>| {
        // A runner counts its successes for good: each round needs a fresh one (its own RNG,
        // drawn from the target's).
        let mut runner = TestRunner::new_with_rng(master.config().clone(), master.new_rng());
        let result = runner.run(&strategy, |value| {
            count.set(count.get() + 1);
            test(value)
        });
        if let Err(e) = result {
            panic!("fuzz domain/{name} found a failing input: {e}");
        }
    };
    Target { name, round: Box::new(round), cases: Cell::new(0), time: Duration::ZERO }
}

#[test]
fn domain_rules() {
    let budget = budget();
    let programs: Vec<Program> =
        ["arkain", "carat", "archipelag", LEDGER_PROGRAM].into_iter().map(|p| Program::load(p).expect("a program")).collect();
    let mut targets = vec![
        target("wallet", 32, wallet_strategy(), check_wallet),
        target("amount", 256, amount_text(), check_amount_text),
        target("decimal", 256, (any_decimal(), any_decimal(), any_decimal()), check_decimals),
        target("quote", 128, quote_strategy(&programs), |(catalog, feature, model, options)| {
            check_quote(&catalog, &feature, model, options)
        }),
        target("tokens", 128, tokens_strategy(), |(p, model, usage, kind, more)| check_tokens(&programs[p], model, usage, kind, more)),
        target("metering", 128, metering_strategy(), |input| check_metering(&programs[0], input)),
        target("reservation", 256, reservation_strategy(), check_reservation),
        target("refund", 256, refund_strategy(), check_refund),
        target("validity", 256, validity_strategy(), check_validity),
        target("statement", 128, statement_strategy(), check_statement),
        target("month", 256, re("[0-9]{0,5}-?[0-9]{0,3}|.{0,9}"), check_month),
    ];
    let started = Instant::now();
    // Every target runs at least one round; then round-robin until the budget is spent.
    let mut first = true;
    while first || started.elapsed() < budget {
        first = false;
        for t in targets.iter_mut() {
            let round_started = Instant::now();
            (t.round)(&t.cases);
            t.time += round_started.elapsed();
        }
    }
    let total: u64 = targets.iter().map(|t| t.cases.get()).sum();
    for t in &targets {
        println!("fuzz domain/{}: {} cases in {:.1} s", t.name, t.cases.get(), t.time.as_secs_f64());
    }
    println!("fuzz domain: {total} cases in {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// The wallet, against a model of the order of consumption written from its documentation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum WalletOp {
    /// `expires_in` may be zero or negative: a lot granted already expired.
    Grant {
        class: usize,
        micros: i64,
        granted_ago: i64,
        expires_in: Option<i64>,
    },
    Spend {
        micros: i64,
    },
    Advance {
        seconds: i64,
    },
    Expire,
}

fn micros_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..=1_000, 1i64..=100_000_000, 1i64..=MAX_OPERATION_MICROS, Just(MAX_OPERATION_MICROS), Just(1)]
}

fn wallet_strategy() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<WalletOp>)> {
    let order = (Just(vec![0usize, 1, 2]).prop_shuffle(), 0usize..4).prop_map(|(classes, cut)| match cut {
        0 => vec![classes],
        1 => vec![vec![classes[0]], vec![classes[1], classes[2]]],
        2 => vec![vec![classes[0], classes[1]], vec![classes[2]]],
        _ => classes.into_iter().map(|c| vec![c]).collect(),
    });
    let op = prop_oneof![
        4 => (0usize..3, micros_strategy(), 0i64..5, proptest::option::of(-5i64..200)).prop_map(|(class, micros, granted_ago, expires_in)| {
            WalletOp::Grant { class, micros, granted_ago, expires_in }
        }),
        4 => micros_strategy().prop_map(|micros| WalletOp::Spend { micros }),
        2 => (0i64..60).prop_map(|seconds| WalletOp::Advance { seconds }),
        1 => Just(WalletOp::Expire),
    ];
    (order, proptest::collection::vec(op, 1..120))
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap()
}

/// The model's lot: (id, tier, expires_at, granted_at, granted, remaining).
#[derive(Debug, Clone)]
struct ModelLot {
    id: i64,
    tier: usize,
    expires_at: Option<DateTime<Utc>>,
    granted_at: DateTime<Utc>,
    granted: i128,
    remaining: i128,
}

impl ModelLot {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

fn check_wallet((tiers, ops): (Vec<Vec<usize>>, Vec<WalletOp>)) -> Result<(), TestCaseError> {
    let classes: Vec<Vec<LotClass>> = tiers.iter().map(|t| t.iter().map(|c| LotClass::ALL[*c]).collect()).collect();
    let order = ConsumptionOrder::new(classes).map_err(TestCaseError::fail)?;
    let tier_of = |class: usize| tiers.iter().position(|t| t.contains(&class)).unwrap();
    let mut wallet = Wallet::default();
    let mut model: Vec<ModelLot> = Vec::new();
    let (mut granted, mut spent, mut expired) = (0i128, 0i128, 0i128);
    let mut now = t0();
    for op in ops {
        match op {
            WalletOp::Grant { class, micros, granted_ago, expires_in } => {
                let granted_at = now - TimeDelta::seconds(granted_ago);
                let expires_at = expires_in.map(|s| now + TimeDelta::seconds(s));
                let id = wallet.grant(LotClass::ALL[class], LotSource::Adjustment, Credits::from_micros(micros), granted_at, expires_at);
                model.push(ModelLot { id, tier: tier_of(class), expires_at, granted_at, granted: micros.into(), remaining: micros.into() });
                granted += i128::from(micros);
            }
            WalletOp::Spend { micros } => {
                let before = wallet.lots.clone();
                let totals_before = wallet.totals;
                let available: i128 = model.iter().filter(|l| l.live(now)).map(|l| l.remaining).sum();
                match wallet.spend(Credits::from_micros(micros), &order, now, "use") {
                    Ok(takes) => {
                        prop_assert!(i128::from(micros) <= available, "spent {micros} of {available}");
                        // The model: spendable lots by tier, soonest expiry (never last), oldest
                        // grant, lowest id; each taken whole until the last.
                        let mut spendable: Vec<&mut ModelLot> = model.iter_mut().filter(|l| l.live(now) && l.remaining > 0).collect();
                        spendable.sort_by(|a, b| {
                            let expiry = match (a.expires_at, b.expires_at) {
                                (Some(x), Some(y)) => x.cmp(&y),
                                (Some(_), None) => std::cmp::Ordering::Less,
                                (None, Some(_)) => std::cmp::Ordering::Greater,
                                (None, None) => std::cmp::Ordering::Equal,
                            };
                            a.tier.cmp(&b.tier).then(expiry).then(a.granted_at.cmp(&b.granted_at)).then(a.id.cmp(&b.id))
                        });
                        let mut left = i128::from(micros);
                        let mut expected = Vec::new();
                        for lot in spendable {
                            if left == 0 {
                                break;
                            }
                            let take = lot.remaining.min(left);
                            lot.remaining -= take;
                            left -= take;
                            expected.push((lot.id, take));
                        }
                        let got: Vec<(i64, i128)> = takes.iter().map(|t| (t.lot_id, i128::from(t.amount.micros()))).collect();
                        prop_assert_eq!(got, expected, "takes in the program's order");
                        spent += i128::from(micros);
                    }
                    Err(refused) => {
                        prop_assert!(i128::from(micros) > available, "refused {micros} with {available} available");
                        prop_assert_eq!(i128::from(refused.available.micros()), available);
                        prop_assert_eq!(refused.requested.micros(), micros);
                        prop_assert_eq!(&wallet.lots, &before, "a refusal changes no lot");
                        prop_assert_eq!(wallet.totals, totals_before, "a refusal changes no total");
                    }
                }
            }
            WalletOp::Advance { seconds } => now += TimeDelta::seconds(seconds),
            WalletOp::Expire => {
                let shown = balance(&wallet.lots, now);
                let written_off = wallet.expire(now);
                let mut expected = Vec::new();
                for lot in model.iter_mut().filter(|l| !l.live(now) && l.remaining > 0) {
                    expected.push((lot.id, lot.remaining));
                    expired += lot.remaining;
                    lot.remaining = 0;
                }
                let got: Vec<(i64, i128)> = written_off.iter().map(|(id, c)| (*id, i128::from(c.micros()))).collect();
                prop_assert_eq!(got, expected, "exactly the expired lots are written off");
                prop_assert_eq!(balance(&wallet.lots, now), shown, "writing off what reads exclude changes no balance");
            }
        }
        // After every step: the wallet agrees with the model lot by lot, no lot is negative or
        // over its grant, and credits are conserved.
        prop_assert_eq!(wallet.lots.len(), model.len());
        for (lot, m) in wallet.lots.iter().zip(&model) {
            prop_assert_eq!(lot.id, m.id);
            prop_assert_eq!(i128::from(lot.remaining.micros()), m.remaining, "lot {}", lot.id);
            prop_assert!(m.remaining >= 0 && m.remaining <= m.granted);
            prop_assert!(lot.remaining <= lot.granted);
        }
        let remaining: i128 = model.iter().map(|l| l.remaining).sum();
        prop_assert_eq!(granted, spent + expired + remaining, "conservation");
        prop_assert_eq!(i128::from(wallet.totals.granted.micros()), granted);
        prop_assert_eq!(i128::from(wallet.totals.spent.micros()), spent);
        prop_assert_eq!(i128::from(wallet.totals.expired.micros()), expired);
        let live: i128 = model.iter().filter(|l| l.live(now)).map(|l| l.remaining).sum();
        prop_assert_eq!(i128::from(balance(&wallet.lots, now).micros()), live);
        wallet.check();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Amounts
// ---------------------------------------------------------------------------------------------

fn amount_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        re("\\PC{0,40}"),
        re("[-+]?[0-9]{0,32}(\\.[0-9]{0,32})?([eE][-+]?[0-9]{1,3})?"),
        re("[ ]?[-+]?[0-9_]{0,12}(\\.[0-9_]{0,8})?[ ]?"),
        re("(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?"),
        // Near misses of the API's grammar: leading zeros, a bare point, a seventh place.
        re("[0+-]?[0-9]{0,3}[.]?[0-9]{0,7}"),
        prop::sample::select(vec![
            "0",
            "-0",
            "0.0",
            "1e9",
            "1000000000",
            "1000000000.000001",
            "0.000001",
            "0.0000001",
            "1e-6",
            "1E-7",
            "NaN",
            "inf",
            "-Infinity",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "1.0000000000000000000000000001",
            "１２",
            "1,5",
            "0x10",
            ".5",
            "5.",
            "+1",
        ])
        .prop_map(str::to_string),
    ]
}

/// What `Credits::parse_positive` must decide for `d`, and the round trip of what it accepts.
fn check_parse(d: Decimal) -> Result<(), TestCaseError> {
    let max = Decimal::from(credits::ledger::amount::MAX_OPERATION_CREDITS);
    match Credits::parse_positive(d) {
        Ok(c) => {
            prop_assert!(d > Decimal::ZERO && d.normalize().scale() <= 6 && d <= max, "accepted {d}");
            prop_assert!(c.micros() >= 1 && c.micros() <= MAX_OPERATION_MICROS);
            prop_assert_eq!(c.to_decimal(), d, "exact: {} micros for {}", c.micros(), d);
            let shown = c.to_string();
            let back = Decimal::from_str(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?} does not parse back: {e}")))?;
            prop_assert_eq!(Credits::parse_positive(back), Ok(c), "round trip through {:?}", shown);
        }
        Err(AmountError::NotPositive) => prop_assert!(d <= Decimal::ZERO, "{d} refused as not positive"),
        Err(AmountError::TooPrecise) => prop_assert!(d > Decimal::ZERO && d.normalize().scale() > 6, "{d} refused as too precise"),
        Err(AmountError::TooLarge) => prop_assert!(d > max && d.normalize().scale() <= 6, "{d} refused as too large"),
        Err(AmountError::Malformed(why)) => prop_assert!(false, "a decimal is never malformed: {d}, {why}"),
    }
    Ok(())
}

/// The API's amount grammar as domain.md states it, written apart from the parser: `0` or digits
/// without a leading zero, then optionally `.` and 1 to 6 digits; at most the maximum.
fn amount_text_model(text: &str) -> Option<Decimal> {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let mut parts = text.split('.');
    let (whole, fraction) = (parts.next()?, parts.next());
    let shaped = parts.next().is_none()
        && digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(|f| digits(f) && f.len() <= 6);
    let value = if shaped { Decimal::from_str_exact(text).ok() } else { None };
    value.filter(|v| *v <= Decimal::from(credits::ledger::amount::MAX_OPERATION_CREDITS))
}

fn check_amount_text(text: String) -> Result<(), TestCaseError> {
    // The API's text: exactly what the model accepts, to the micro-credit.
    match (Credits::parse_str(&text), amount_text_model(&text)) {
        (Ok(c), Some(d)) => prop_assert_eq!(c.to_decimal(), d.normalize(), "{:?}", text),
        (Err(_), None) => {}
        (got, model) => prop_assert!(false, "{:?}: parsed {:?}, the grammar says {:?}", text, got, model),
    }
    if let Ok(d) = Decimal::from_str(&text) {
        check_parse(d)?;
    }
    if let Ok(d) = Decimal::from_scientific(&text) {
        check_parse(d)?;
    }
    if let Ok(d) = Decimal::from_str_exact(&text) {
        check_parse(d)?;
    }
    Ok(())
}

/// Any decimal rust_decimal can hold, biased towards the ranges amounts and rates live in.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    let max_mantissa = (1i128 << 96) - 1;
    prop_oneof![
        (-max_mantissa..=max_mantissa, 0u32..=28).prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s)),
        (-1_000_000_000_000_000i128..=1_000_000_000_000_000, 0u32..=12).prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s)),
        (0i64..=10_000_000, 0u32..=6).prop_map(|(m, s)| Decimal::new(m, s)),
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::ZERO),
    ]
}

fn check_decimals((a, b, c): (Decimal, Decimal, Decimal)) -> Result<(), TestCaseError> {
    check_parse(a)?;
    check_parse(a.normalize())?;
    // One charged line: never a panic; rounded once to the micro-credit; monotonic.
    let half_micro = Decimal::new(5, 7);
    let max = Decimal::from(credits::ledger::amount::MAX_OPERATION_CREDITS);
    match Credits::charge(a, b) {
        Ok(charged) => {
            prop_assert!(a >= Decimal::ZERO && b >= Decimal::ZERO);
            prop_assert!(charged.micros() <= MAX_OPERATION_MICROS);
            if let Some(exact) = a.checked_mul(b) {
                prop_assert!((charged.to_decimal() - exact).abs() <= half_micro, "{a} x {b} = {exact} charged {charged}");
            }
            let (low, high) = if b <= c { (b, c) } else { (c, b) };
            if let (Ok(x), Ok(y)) = (Credits::charge(a, low), Credits::charge(a, high)) {
                prop_assert!(x <= y, "charge({a}, {low}) = {x} > charge({a}, {high}) = {y}");
            }
        }
        Err(AmountError::NotPositive) => prop_assert!(a < Decimal::ZERO || b < Decimal::ZERO),
        Err(AmountError::TooLarge) => {
            if let Some(exact) = a.checked_mul(b) {
                prop_assert!(exact > max, "{a} x {b} = {exact} refused as too large");
            }
        }
        Err(AmountError::TooPrecise | AmountError::Malformed(_)) => prop_assert!(false, "a charge is rounded, never too precise"),
    }
    // A purchase price: never a panic, monotonic in the credits at a non-negative rate.
    if let (Ok(x), Ok(y)) = (Credits::parse_positive(b.abs()), Credits::parse_positive(c.abs())) {
        let (low, high) = if x <= y { (x, y) } else { (y, x) };
        let rate = a.abs();
        if let (Some(p), Some(q)) = (credits::ledger::money::price_of(low, rate), credits::ledger::money::price_of(high, rate)) {
            prop_assert!(0 <= p && p <= q, "price_of({low}) = {p} > price_of({high}) = {q} at {rate}");
        }
        let _ = credits::ledger::money::price_of(low, a);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Prices
// ---------------------------------------------------------------------------------------------

fn rate() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (1i64..=1_000_000_000_000, 0u32..=12).prop_map(|(m, s)| Decimal::new(m, s)),
        any_decimal(),
        Just(Decimal::from(credits::ledger::amount::MAX_OPERATION_CREDITS)),
    ]
}

fn code() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(vec!["a", "b", "c", "hd", "sd"]).prop_map(str::to_string), re("[a-z0-9._-]{1,6}"), re("\\PC{0,4}")]
}

fn catalog_entry() -> impl Strategy<Value = CatalogEntry> {
    (
        (code(), proptest::option::of(code()), re("\\PC{0,8}"), rate(), any::<bool>()),
        proptest::option::of((0u32..=120).prop_map(|max| CountOption { max })),
        proptest::option::of(
            (0u32..=4000, 0u32..=4000).prop_map(|(default_seconds, max_seconds)| LengthOption { default_seconds, max_seconds }),
        ),
        proptest::option::of((code(), proptest::collection::vec((code(), rate()), 0..4)).prop_map(|(default, levels)| ResolutionOption {
            default,
            levels: levels.into_iter().map(|(name, multiplier)| ResolutionLevel { name, multiplier }).collect(),
        })),
    )
        .prop_map(|((feature, model, name, credits, default), count, length, resolution)| CatalogEntry {
            feature,
            model,
            name,
            credits,
            default,
            count,
            length,
            resolution,
        })
}

fn options() -> impl Strategy<Value = QuoteOptions> {
    (
        proptest::option::of(prop_oneof![0u32..=200, any::<u32>()]),
        proptest::option::of(prop_oneof![0u32..=4000, any::<u32>()]),
        proptest::option::of(prop_oneof![code(), prop::sample::select(vec!["480p", "720p", "1080p", "4k"]).prop_map(str::to_string)]),
    )
        .prop_map(|(count, length_seconds, resolution)| QuoteOptions { count, length_seconds, resolution })
}

type QuoteInput = (Catalog, String, Option<String>, QuoteOptions);

fn quote_strategy(programs: &[Program]) -> impl Strategy<Value = QuoteInput> + use<> {
    let catalogs: Vec<Catalog> = programs.iter().map(|p| p.catalog.clone()).collect();
    let features: Vec<String> = programs.iter().flat_map(|p| p.catalog.entries().iter().map(|e| e.feature.clone())).collect();
    let models: Vec<String> = programs.iter().flat_map(|p| p.catalog.entries().iter().filter_map(|e| e.model.clone())).collect();
    let catalog = prop_oneof![
        prop::sample::select(catalogs),
        proptest::collection::vec(catalog_entry(), 0..5).prop_map(|entries| Catalog::new(entries).unwrap_or_default()),
    ];
    let feature = prop_oneof![prop::sample::select(features), code()];
    let model = proptest::option::of(prop_oneof![prop::sample::select(models), code()]);
    (catalog, feature, model, options())
}

fn check_quote(catalog: &Catalog, feature: &str, model: Option<String>, options: QuoteOptions) -> Result<(), TestCaseError> {
    let Ok(quote) = pricing::quote(catalog, feature, model.as_deref(), &options) else {
        return Ok(());
    };
    prop_assert!(quote.total.micros() <= MAX_OPERATION_MICROS);
    prop_assert!(!quote.lines.is_empty());
    // More results, or a longer length, never costs less.
    if let Some(count) = options.count.and_then(|c| c.checked_add(1))
        && let Ok(more) = pricing::quote(catalog, feature, model.as_deref(), &QuoteOptions { count: Some(count), ..options.clone() })
    {
        prop_assert!(more.total >= quote.total, "count {count}: {} < {}", more.total, quote.total);
    }
    if let Some(length) = options.length_seconds.and_then(|l| l.checked_add(1))
        && let Ok(longer) =
            pricing::quote(catalog, feature, model.as_deref(), &QuoteOptions { length_seconds: Some(length), ..options.clone() })
    {
        prop_assert!(longer.total >= quote.total, "length {length}: {} < {}", longer.total, quote.total);
    }
    Ok(())
}

fn tokens() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..1_000, 0u64..100_000_000, any::<u64>()]
}

type TokensInput = (usize, Option<String>, pricing::TokenUsage, usize, u64);

fn tokens_strategy() -> impl Strategy<Value = TokensInput> {
    let usage = (tokens(), tokens(), tokens(), tokens()).prop_map(|(input, output, cache_write, cache_read)| pricing::TokenUsage {
        input,
        output,
        cache_write,
        cache_read,
    });
    let model =
        proptest::option::of(prop_oneof![prop::sample::select(vec!["claude-sonnet-4.6", "gpt-5-nano"]).prop_map(str::to_string), code()]);
    (0usize..4, model, usage, 0usize..4, tokens())
}

fn check_tokens(program: &Program, model: Option<String>, usage: pricing::TokenUsage, kind: usize, more: u64) -> Result<(), TestCaseError> {
    let Some(token_pricing) = &program.token_pricing else { return Ok(()) };
    let Ok(charge) = pricing::price_question(token_pricing, model.as_deref(), &usage) else {
        return Ok(());
    };
    prop_assert!(charge.total.micros() <= MAX_OPERATION_MICROS);
    let mut bigger = usage;
    let field = match kind {
        0 => &mut bigger.input,
        1 => &mut bigger.output,
        2 => &mut bigger.cache_write,
        _ => &mut bigger.cache_read,
    };
    *field = field.saturating_add(more);
    if let Ok(after) = pricing::price_question(token_pricing, model.as_deref(), &bigger) {
        prop_assert!(after.total >= charge.total, "{bigger:?} costs {} < {} for {usage:?}", after.total, charge.total);
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct MeteringInput {
    tier: String,
    add_on: String,
    seconds: (u64, u64),
    gb_seconds: (Decimal, Decimal),
    traffic: (u64, u64, u64),
    quota: (Decimal, Decimal),
    intervals: Vec<pricing::StorageInterval>,
}

fn metering_strategy() -> impl Strategy<Value = MeteringInput> {
    let big = || prop_oneof![0u64..10_000, 0u64..100_000_000_000_000, any::<u64>()];
    let tier = prop_oneof![prop::sample::select(vec!["micro", "small", "gpu_basic", "xlarge"]).prop_map(str::to_string), code()];
    let add_on = prop_oneof![Just("code_supporter".to_string()), code()];
    let gb = || prop_oneof![any_decimal(), (0i64..1_000_000_000, 0u32..9).prop_map(|(m, s)| Decimal::new(m, s))];
    let interval = (big(), big()).prop_map(|(bytes, seconds)| pricing::StorageInterval { bytes, seconds });
    (tier, add_on, (big(), big()), (gb(), gb()), (big(), big(), big()), (gb(), gb()), proptest::collection::vec(interval, 0..6)).prop_map(
        |(tier, add_on, seconds, gb_seconds, traffic, quota, intervals)| MeteringInput {
            tier,
            add_on,
            seconds,
            gb_seconds,
            traffic,
            quota,
            intervals,
        },
    )
}

fn ordered<T: PartialOrd>(a: T, b: T) -> (T, T) {
    if a <= b { (a, b) } else { (b, a) }
}

fn check_metering(arkain: &Program, input: MeteringInput) -> Result<(), TestCaseError> {
    let metering = arkain.metering.as_ref().expect("arkain meters containers");
    let one = 1;
    // Container time and add-ons: monotonic in seconds, additive within one rounding each.
    let (s1, s2) = ordered(input.seconds.0, input.seconds.1);
    if let (Ok(a), Ok(b)) = (pricing::container_charge(metering, &input.tier, s1), pricing::container_charge(metering, &input.tier, s2)) {
        prop_assert!(a <= b, "{} s cost {a} > {} s cost {b}", s1, s2);
        if let (Some(rest), Some(sum)) = (s2.checked_sub(s1), s1.checked_add(s2 - s1))
            && let Ok(c) = pricing::container_charge(metering, &input.tier, rest)
        {
            let split = a.micros() + c.micros();
            prop_assert!((split - b.micros()).abs() <= one, "{s1} s + {rest} s = {split} vs {sum} s = {}", b.micros());
        }
    }
    if let (Ok(a), Ok(b)) =
        (pricing::add_on_charge(metering, &input.add_on, &input.tier, s1), pricing::add_on_charge(metering, &input.add_on, &input.tier, s2))
    {
        prop_assert!(a <= b);
        let tier = metering.tier(&input.tier).unwrap();
        let add_on = metering.add_on(&input.add_on).unwrap();
        if add_on.free_on_tiers.contains(&tier.code) {
            prop_assert!(a.is_zero() && b.is_zero(), "an add-on is free on {}", tier.code);
        }
    }
    // Storage: a negative quantity is an error; monotonic.
    let (g1, g2) = ordered(input.gb_seconds.0, input.gb_seconds.1);
    let storage = (pricing::storage_charge(metering, g1), pricing::storage_charge(metering, g2));
    if g1 < Decimal::ZERO {
        prop_assert!(storage.0.is_err(), "negative GB-seconds {g1} charged");
    }
    if let (Ok(a), Ok(b)) = storage {
        prop_assert!(a <= b, "{g1} GB-s cost {a} > {g2} GB-s cost {b}");
    }
    // Traffic: free up to the allowance, monotonic, and a month split into samples costs what
    // one sample would, within one rounding per sample.
    let (earlier, b1, b2) = input.traffic;
    let (b1, b2) = ordered(b1, b2);
    let free = metering.traffic().free_bytes_per_month;
    if let (Ok(x), Ok(y)) = (pricing::traffic_charge(metering, earlier, b1), pricing::traffic_charge(metering, earlier, b2)) {
        prop_assert!(x <= y, "{b1} B after {earlier} cost {x} > {b2} B cost {y}");
        if u128::from(earlier) + u128::from(b1) <= u128::from(free) {
            prop_assert!(x.is_zero(), "{b1} B after {earlier} B is within the free {free} B");
        }
        if let Some(after) = earlier.checked_add(b1)
            && let Ok(z) = pricing::traffic_charge(metering, after, b2 - b1)
        {
            let split = x.micros() + z.micros();
            prop_assert!((split - y.micros()).abs() <= one, "{b1} + {} B = {split} vs {b2} B = {}", b2 - b1, y.micros());
        }
    }
    // GB-seconds over a quota: a higher quota never counts more.
    let (q1, q2) = ordered(input.quota.0, input.quota.1);
    if let (Ok(x), Ok(y)) = (pricing::gb_seconds_over_quota(q1, &input.intervals), pricing::gb_seconds_over_quota(q2, &input.intervals)) {
        prop_assert!(x >= y && y >= Decimal::ZERO, "quota {q1}: {x}, quota {q2}: {y}");
    }
    for gb in [input.quota.0, input.quota.1, input.gb_seconds.0] {
        if let Some(bytes) = pricing::gb_to_bytes(gb) {
            prop_assert_eq!(Decimal::from(bytes) / Decimal::from(pricing::BYTES_PER_GB), gb, "{} GB is {} bytes", gb, bytes);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reservations, refunds, validities
// ---------------------------------------------------------------------------------------------

fn reservation_strategy() -> impl Strategy<Value = (Vec<i64>, u64, i64)> {
    (proptest::collection::vec(micros_strategy(), 1..24), any::<u64>(), prop_oneof![-10i64..10, -1_000_000i64..2_000_000])
}

fn check_reservation((amounts, pick, hold_seconds): (Vec<i64>, u64, i64)) -> Result<(), TestCaseError> {
    use credits::ledger::reservation::{MAX_HOLD, deadline, split};
    let parts: Vec<(i64, Credits)> = amounts.iter().enumerate().map(|(i, a)| (i as i64 + 1, Credits::from_micros(*a))).collect();
    let held: i64 = amounts.iter().sum();
    let captured = Credits::from_micros((pick % (held as u64 + 1)) as i64);
    let (charged, returned) = split(&parts, captured);
    let sum = |v: &[(i64, Credits)]| v.iter().map(|(_, c)| c.micros()).sum::<i64>();
    prop_assert_eq!(sum(&charged), captured.micros());
    prop_assert_eq!(sum(&charged) + sum(&returned), held);
    prop_assert!(charged.iter().chain(&returned).all(|(_, c)| !c.is_zero()), "no empty part");
    // The charge is a prefix of the parts: every part before the last charged one is charged whole.
    for (i, (lot, amount)) in charged.iter().enumerate() {
        prop_assert_eq!(*lot, parts[i].0);
        if i + 1 < charged.len() {
            prop_assert_eq!(*amount, parts[i].1);
        }
    }
    for (lot, amount) in &parts {
        let of = |v: &[(i64, Credits)]| v.iter().filter(|(l, _)| l == lot).map(|(_, c)| c.micros()).sum::<i64>();
        prop_assert_eq!(of(&charged) + of(&returned), amount.micros());
    }
    let now = t0();
    let hold = TimeDelta::seconds(hold_seconds);
    match deadline(now, Some(hold)) {
        Ok(at) => prop_assert!(hold > TimeDelta::zero() && hold <= MAX_HOLD && at == now + hold),
        Err(_) => prop_assert!(hold <= TimeDelta::zero() || hold > MAX_HOLD),
    }
    Ok(())
}

fn refund_strategy() -> impl Strategy<Value = (u8, i64, i64, u64, u64)> {
    (0u8..3, prop_oneof![1i64..10_000, 1i64..=i64::MAX], prop_oneof![1i64..1_000_000, 1i64..=i64::MAX], any::<u64>(), any::<u64>())
}

fn check_refund((policy, billed, bought, u1, u2): (u8, i64, i64, u64, u64)) -> Result<(), TestCaseError> {
    use credits::ledger::refund::{RefundPolicy, RefundRefusal, refund_minor};
    let policy = [RefundPolicy::ProRata, RefundPolicy::UnusedOnly, RefundPolicy::Never][policy as usize];
    let (u1, u2) = ordered((u1 % (bought as u64 + 1)) as i64, (u2 % (bought as u64 + 1)) as i64);
    let bought_c = Credits::from_micros(bought);
    let first = refund_minor(policy, billed, bought_c, Credits::from_micros(u1));
    let second = refund_minor(policy, billed, bought_c, Credits::from_micros(u2));
    match policy {
        RefundPolicy::Never => prop_assert!(first == Err(RefundRefusal::NotRefundable) && second == first),
        RefundPolicy::UnusedOnly => {
            for (u, r) in [(u1, first), (u2, second)] {
                match u {
                    0 => prop_assert_eq!(r, Err(RefundRefusal::NothingLeft)),
                    u if u == bought => prop_assert_eq!(r, Ok(billed)),
                    _ => prop_assert_eq!(r, Err(RefundRefusal::PartlyUsed)),
                }
            }
        }
        RefundPolicy::ProRata => {
            for (u, r) in [(u1, first), (u2, second)] {
                if u == 0 {
                    prop_assert_eq!(r, Err(RefundRefusal::NothingLeft));
                    continue;
                }
                let refund = r.map_err(|e| TestCaseError::fail(format!("refused {u} of {bought}: {e}")))?;
                let exact_times_bought = i128::from(billed) * i128::from(u);
                prop_assert!(refund <= billed && refund >= 1);
                prop_assert!(i128::from(refund) * i128::from(bought) >= exact_times_bought);
                prop_assert!(i128::from(refund - 1) * i128::from(bought) < exact_times_bought);
            }
            if let (Ok(a), Ok(b)) = (first, second) {
                prop_assert!(a <= b, "more unused credits never refund less");
            }
        }
    }
    Ok(())
}

fn validity_strategy() -> impl Strategy<Value = (String, i64)> {
    let text = prop_oneof![
        any::<String>(),
        re("(never|end of month|NEVER| End Of Month )"),
        re("[ ]?[0-9]{0,12} {1,2}(hour|hours|day|days|month|months|week|HOURS|Days)[ ]?"),
        re("[+-]?[0-9]{1,6} (hours|days|months)"),
    ];
    // Anchors from 1970 to about 2200: the clock's range, not chrono's.
    (text, 0i64..7_258_118_400)
}

fn check_validity((text, anchor): (String, i64)) -> Result<(), TestCaseError> {
    let Ok(validity) = text.parse::<Validity>() else { return Ok(()) };
    prop_assert_eq!(validity.to_string().parse::<Validity>(), Ok(validity), "round trip of {:?}", text);
    let anchor = DateTime::from_timestamp(anchor, 0).unwrap();
    match validity.expires_at(anchor) {
        None => prop_assert_eq!(validity, Validity::Never),
        Some(at) => prop_assert!(at > anchor, "{validity} from {anchor} ends at {at}"),
    }
    let longer = match validity {
        Validity::Hours(n) => Validity::Hours(n + 1),
        Validity::Days(n) => Validity::Days(n + 1),
        Validity::Months(n) => Validity::Months(n + 1),
        other => other,
    };
    if let (Some(a), Some(b)) = (validity.expires_at(anchor), longer.expires_at(anchor)) {
        prop_assert!(a <= b);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Request decoding over HTTP
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Text(String),
    Json(Value),
    Request { query: String, variables: Value, operation_name: Option<Value> },
    Multipart { boundary: String, parts: Vec<(String, String)> },
}

#[derive(Debug, Clone)]
struct FuzzRequest {
    token: usize,
    content_type: Option<String>,
    body: Body,
}

const FIELDS: &[&str] = &[
    "me",
    "account",
    "balance",
    "total",
    "held",
    "available",
    "bars",
    "source",
    "remaining",
    "expiries",
    "expiresAt",
    "lots",
    "edges",
    "node",
    "id",
    "amount",
    "history",
    "kind",
    "purchases",
    "plans",
    "program",
    "creditPackages",
    "priceQuote",
    "checkInStatus",
    "usage",
    "jobs",
    "spendCredits",
    "grantCredits",
    "checkIn",
    "redeemCoupon",
    "reserveCredits",
    "pageInfo",
    "hasNextPage",
    "hasPreviousPage",
    "endCursor",
    "startCursor",
    "totalCount",
    "last",
    "before",
    "__typename",
    "__schema",
    "__type",
    "types",
    "fields",
    "name",
    "ofType",
    "marketRates",
    "lowCredits",
    "luckyCredits",
    "containers",
    "x",
    "é",
    "_",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_string),
        1 => re("[A-Za-z_][A-Za-z0-9_]{0,12}"),
        1 => re("\\PC{1,6}"),
    ]
}

/// A GraphQL literal, in text: numbers of any size, strings with any characters, enums,
/// variables, lists and objects.
fn literal() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        re("-?[0-9]{1,45}"),
        re("-?[0-9]{1,25}\\.[0-9]{1,25}([eE][-+]?[0-9]{1,4})?"),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        re("[A-Z_]{1,12}"),
        re("\\$[a-z]{1,4}"),
        prop::sample::select(vec!["true", "false", "null", "\"\"\"block\n\\\"\"\" string\"\"\"", "\"1e400\"", "\"-0.0000001\"", "1e400"])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec((name(), inner), 0..6)
                .prop_map(|v| format!("{{{}}}", v.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))),
        ]
    })
}

fn field() -> impl Strategy<Value = String> {
    let arguments = proptest::option::of(proptest::collection::vec((name(), literal()), 0..4)).prop_map(|a| {
        a.map(|a| format!("({})", a.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))).unwrap_or_default()
    });
    let alias = proptest::option::of(name()).prop_map(|a| a.map(|a| format!("{a}: ")).unwrap_or_default());
    let leaf = (alias, name(), arguments).prop_map(|(alias, name, args)| format!("{alias}{name}{args}"));
    leaf.prop_recursive(16, 64, 5, |inner| {
        (inner.clone(), proptest::collection::vec(inner, 1..5))
            .prop_map(|(head, selection)| format!("{head} {{ {} }}", selection.join(" ")))
    })
}

/// A whole document: an operation of a random type over random selections, possibly with
/// variable definitions, fragments, directives, very deep nesting or many aliases.
fn document() -> impl Strategy<Value = String> {
    let operation =
        prop::sample::select(vec!["", "query", "mutation", "subscription", "query Q", "mutation M($a: ID!, $amt: CreditAmount)"]);
    let plain = (operation, proptest::collection::vec(field(), 1..6)).prop_map(|(op, fields)| format!("{op} {{ {} }}", fields.join(" ")));
    let deep = (1usize..400, name()).prop_map(|(depth, name)| format!("{}{}", format!("{{ {name} ").repeat(depth), "}".repeat(depth)));
    // Literals nested deeper than ~280 overflowed the parser's stack and aborted a debug build
    // (`an_argument_nested_hundreds_deep_does_not_kill_the_server`); the nesting limit refuses
    // them before parsing now, and the fuzz goes well past it.
    let deep_value =
        (1usize..=SAFE_LITERAL_DEPTH, prop::sample::select(vec![("[", "]"), ("{a: ", "}")])).prop_map(|(depth, (open, close))| {
            format!("{{ priceQuote(feature: \"snap\", options: {}1{}) {{ total }} }}", open.repeat(depth), close.repeat(depth))
        });
    let aliases =
        (1usize..2000).prop_map(|n| format!("{{ {} }}", (0..n).map(|i| format!("a{i}: me {{ id }}")).collect::<Vec<_>>().join(" ")));
    let fragments = prop::sample::select(vec![
        "fragment F on Account { ...F } { me { ...F } }",
        "fragment F on Account { id ...G } fragment G on Account { ...F } { me { ...F } }",
        "{ me { ... on Account { id } ... on Nope { x } } }",
        "{ me @skip(if: $x) { id } }",
        "{ me @include(if: \"yes\") { id } }",
        "query { __schema { types { name fields { name type { name ofType { name ofType { name } } } } } } }",
        "{ account(id: \"fz-0\") { history(first: 2147483647) { edges { node { id } } } } }",
        "{ account(id: \"fz-0\") { lots(first: -1) { edges { node { id } } } } }",
        "{ account(id: \"fz-0\") { history(after: \"////\") { edges { node { id } } } } }",
        "{ account(id: \"fz-0\") { lots(last: 2, before: \"djE6bG90czox\", first: 1) { totalCount } } }",
        "{ account(id: \"fz-0\") { usage(month: \"2026-13\") { __typename } } }",
        "{ marketRates(workload: \"image\", history: 1000000) { average } }",
        "mutation { a: checkIn(input: {accountId: \"fz-1\", idempotencyKey: \"k\"}) { day } b: checkIn(input: {accountId: \"fz-1\", idempotencyKey: \"k\"}) { day } }",
    ])
    .prop_map(str::to_string);
    prop_oneof![6 => plain, 1 => deep, 1 => deep_value, 1 => aliases, 1 => fragments]
}

/// How deep the fuzz nests an argument literal; see `an_argument_nested_hundreds_deep_does_not_kill_the_server`.
const SAFE_LITERAL_DEPTH: usize = 1_000;

/// Cuts, repeats and splices of a valid document.
fn mutated(template: &'static str) -> impl Strategy<Value = String> {
    let edit =
        (any::<prop::sample::Index>(), 0usize..8, prop_oneof![re("[{}()\\[\\]:$!@.,\"\\\\ ]{1,3}"), re("\\PC{1,3}"), Just(String::new())]);
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = template.chars().collect();
        for (at, cut, insert) in edits {
            let at = at.index(chars.len() + 1);
            let end = (at + cut).min(chars.len());
            chars.splice(at..end, insert.chars());
        }
        chars.into_iter().collect()
    })
}

/// Amounts: valid ones, and everything a client could send instead.
fn amount_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => re("(0|[1-9][0-9]{0,2})\\.[0-9]{1,6}").prop_map(Value::from),
        2 => amount_text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        1 => prop::sample::select(vec![json!(null), json!(true), json!([]), json!({}), json!(["1"]), json!({"amount": "1"}), json!("1".repeat(5000))]),
    ]
}

fn text_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec!["fz-0", "fz-1", "fz-2", "fz-3", "fz-4", "snap", "chat", "micro", "FUZZ-ONE", "credits-100"])
            .prop_map(Value::from),
        2 => re("[ -~]{0,20}").prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => re("[a-z]{130,200}").prop_map(Value::from),
        1 => any::<i32>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn key_value() -> impl Strategy<Value = Value> {
    prop_oneof![4 => re("k-[a-z0-9]{1,10}").prop_map(Value::from), 1 => text_value()]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec!["query", "variables", "operationName", "extensions", "{ me { id } }"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec!["query", "variables", "operationName", "extensions"]).prop_map(str::to_string),
                    any::<String>()
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Real operations with garbage in their variables.
fn templated() -> impl Strategy<Value = (String, Value)> {
    const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount, $k: String!, $f: String!) { spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: $f}) { sequence amount availableAfter takes { lotId amount } } }";
    const PRICED: &str = "mutation($a: ID!, $k: String!, $f: String!, $n: Int, $l: Int, $r: String, $t: Int!) { spendCredits(input: {accountId: $a, idempotencyKey: $k, feature: $f, price: {count: $n, lengthSeconds: $l, resolution: $r, tokens: {input: $t}}}) { amount } }";
    const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $c: LotClass!, $e: DateTime, $v: String, $k: String!, $s: LotSource!) { grantCredits(input: {accountId: $a, amount: $amt, class: $c, expiresAt: $e, validFor: $v, idempotencyKey: $k, source: $s}) { lotId } }";
    const RESERVE: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $h: Int) { reserveCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\", holdSeconds: $h}) { reservation { id } } }";
    const CAPTURE: &str = "mutation($id: ID!, $amt: CreditAmount!, $k: String!) { captureReservation(input: {reservationId: $id, amount: $amt, idempotencyKey: $k}) { __typename } }";
    const RELEASE: &str =
        "mutation($id: ID!, $k: String!) { releaseReservation(input: {reservationId: $id, idempotencyKey: $k}) { __typename } }";
    const PURCHASE: &str = "mutation($a: ID!, $amt: CreditAmount, $p: String, $k: String!) { purchaseCredits(input: {accountId: $a, credits: $amt, package: $p, idempotencyKey: $k}) { id status } }";
    const CONFIRM: &str = "mutation($id: ID!, $r: String!, $m: Int) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r, amountMinor: $m}) { id status } }";
    const REFUND: &str = "mutation($id: ID!, $k: String!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: $k}) { __typename } }";
    const COUPON: &str = "mutation($c: String!, $amt: CreditAmount!, $v: String, $m: Int, $e: DateTime) { createCoupon(input: {code: $c, credits: $amt, validFor: $v, maxRedemptions: $m, endsAt: $e}) { code } }";
    const REDEEM: &str =
        "mutation($a: ID!, $c: String!, $k: String!) { redeemCoupon(input: {accountId: $a, code: $c, idempotencyKey: $k}) { amount } }";
    const CHECK_IN: &str = "mutation($a: ID!, $k: String!) { checkIn(input: {accountId: $a, idempotencyKey: $k}) { day } }";
    const USAGE: &str = "mutation($a: ID!, $k: String!, $c: String!, $gb: Quantity!, $b: Quantity!) { s: recordUsage(input: {accountId: $a, idempotencyKey: $k, storage: {containerId: $c, gb: $gb}}) { __typename } t: recordUsage(input: {accountId: $a, idempotencyKey: $c, traffic: {containerId: $c, bytes: $b}}) { __typename } }";
    const START: &str = "mutation($a: ID!, $k: String!, $c: String!, $t: String!) { startContainer(input: {accountId: $a, idempotencyKey: $k, containerId: $c, tier: $t}) { __typename } }";
    const CREATE: &str =
        "mutation($a: ID!, $p: String, $r: String) { createAccount(input: {externalId: $a, plan: $p, referralCode: $r}) { created } }";
    const STATUS: &str = "mutation($a: ID!, $s: AccountStatus!) { setAccountStatus(input: {accountId: $a, status: $s}) { status } }";
    const QUOTE: &str = "query($f: String!, $n: Int, $l: Int, $r: String, $m: String) { priceQuote(feature: $f, options: {count: $n, lengthSeconds: $l, resolution: $r, model: $m}) { total } }";
    const READ: &str = "query($a: ID!, $n: Int, $c: String, $from: DateTime) { account(id: $a) { balance { total held available } lots(first: $n, after: $c) { edges { node { id remaining } } } history(first: $n, after: $c, filter: {from: $from}) { edges { node { id } } } } }";

    let int = || prop_oneof![Just(Value::Null), (-5i64..200).prop_map(Value::from), any::<i64>().prop_map(Value::from), amount_value()];
    let date = || {
        prop_oneof![
            Just(Value::Null),
            (0i64..4_102_444_800).prop_map(|s| Value::from(DateTime::from_timestamp(s, 0).unwrap().to_rfc3339())),
            text_value(),
            Just(Value::from("+262143-12-31T23:59:59Z")),
            Just(Value::from("1970-01-01T00:00:00-23:59")),
        ]
    };
    let class = prop_oneof![prop::sample::select(vec!["FREE", "PAID", "PROMOTIONAL"]).prop_map(Value::from), text_value()];
    let source =
        prop_oneof![prop::sample::select(vec!["ADJUSTMENT", "EVENT", "PROVIDER_EARNINGS", "PURCHASE"]).prop_map(Value::from), text_value()];
    let validity = prop_oneof![validity_strategy().prop_map(|(s, _)| Value::from(s)), Just(Value::Null)];
    let id = || prop_oneof![(0i64..50).prop_map(|i| Value::from(i.to_string())), text_value(), any::<i64>().prop_map(Value::from)];
    let (a, k, t) = (text_value, key_value, text_value);
    prop_oneof![
        4 => (a(), amount_value(), k(), t()).prop_map(|(a, amt, k, f)| (SPEND.into(), json!({ "a": a, "amt": amt, "k": k, "f": f }))),
        1 => (a(), k(), t(), int(), int(), t(), int()).prop_map(|(a, k, f, n, l, r, tk)| (PRICED.into(), json!({ "a": a, "k": k, "f": f, "n": n, "l": l, "r": r, "t": tk }))),
        2 => (a(), amount_value(), class, date(), validity, k(), source).prop_map(|(a, amt, c, e, v, k, s)| (GRANT.into(), json!({ "a": a, "amt": amt, "c": c, "e": e, "v": v, "k": k, "s": s }))),
        1 => (a(), amount_value(), k(), int()).prop_map(|(a, amt, k, h)| (RESERVE.into(), json!({ "a": a, "amt": amt, "k": k, "h": h }))),
        1 => (id(), amount_value(), k()).prop_map(|(id, amt, k)| (CAPTURE.into(), json!({ "id": id, "amt": amt, "k": k }))),
        1 => (id(), k()).prop_map(|(id, k)| (RELEASE.into(), json!({ "id": id, "k": k }))),
        1 => (a(), amount_value(), t(), k()).prop_map(|(a, amt, p, k)| (PURCHASE.into(), json!({ "a": a, "amt": amt, "p": p, "k": k }))),
        1 => (id(), k(), int()).prop_map(|(id, r, m)| (CONFIRM.into(), json!({ "id": id, "r": r, "m": m }))),
        1 => (id(), k()).prop_map(|(id, k)| (REFUND.into(), json!({ "id": id, "k": k }))),
        1 => (t(), amount_value(), validity_strategy(), int(), date()).prop_map(|(c, amt, (v, _), m, e)| (COUPON.into(), json!({ "c": c, "amt": amt, "v": v, "m": m, "e": e }))),
        1 => (a(), t(), k()).prop_map(|(a, c, k)| (REDEEM.into(), json!({ "a": a, "c": c, "k": k }))),
        1 => (a(), k()).prop_map(|(a, k)| (CHECK_IN.into(), json!({ "a": a, "k": k }))),
        1 => (a(), k(), t(), amount_value(), amount_value()).prop_map(|(a, k, c, gb, b)| (USAGE.into(), json!({ "a": a, "k": k, "c": c, "gb": gb, "b": b }))),
        1 => (a(), k(), t(), t()).prop_map(|(a, k, c, tier)| (START.into(), json!({ "a": a, "k": k, "c": c, "t": tier }))),
        1 => (t(), t(), t()).prop_map(|(a, p, r)| (CREATE.into(), json!({ "a": a, "p": p, "r": r }))),
        1 => (a(), prop_oneof![prop::sample::select(vec!["ACTIVE", "ACTIVE", "INACTIVE", "SUSPENDED"]).prop_map(Value::from), text_value()])
            .prop_map(|(a, s)| (STATUS.into(), json!({ "a": a, "s": s }))),
        1 => (t(), int(), int(), t(), t()).prop_map(|(f, n, l, r, m)| (QUOTE.into(), json!({ "f": f, "n": n, "l": l, "r": r, "m": m }))),
        2 => (a(), int(), t(), date()).prop_map(|(a, n, c, from)| (READ.into(), json!({ "a": a, "n": n, "c": c, "from": from }))),
        1 => mutated(SPEND).prop_map(|q| (q, json!({ "a": "fz-0", "amt": "1", "k": "k-m", "f": "chat" }))),
        1 => mutated(READ).prop_map(|q| (q, json!({ "a": "fz-0", "n": 3 }))),
        1 => mutated(GRANT).prop_map(|q| (q, json!({ "a": "fz-0", "amt": "1", "c": "PAID", "k": "k-g", "s": "EVENT" }))),
    ]
}

fn fuzz_request() -> impl Strategy<Value = FuzzRequest> {
    let content_type = prop_oneof![
        8 => Just(Some("application/json".to_string())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "text/plain", "application/graphql", "application/graphql-response+json", "application/x-www-form-urlencoded",
            "application/json; charset=latin1", "multipart/form-data", "*/*",
        ])
        .prop_map(|s| Some(s.to_string())),
        1 => re("\\PC{0,20}").prop_map(Some),
    ];
    let variables = prop_oneof![3 => Just(Value::Null), 1 => json_value()];
    let body = prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(Body::Bytes),
        1 => any::<String>().prop_map(Body::Text),
        1 => json_value().prop_map(Body::Json),
        // Huge numbers and deep nesting that serde_json's Value cannot hold or refuses.
        1 => prop_oneof![
            re("-?[0-9]{30,400}(\\.[0-9]{0,40})?([eE][-+]?[0-9]{1,6})?")
                .prop_map(|n| format!("{{\"query\": \"query($n: Int) {{ plans {{ code }} }}\", \"variables\": {{\"n\": {n}}}}}")),
            (1usize..3000).prop_map(|d| format!("{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"a\": {}1{}}}}}", "[".repeat(d), "]".repeat(d))),
            (60_000usize..110_000).prop_map(|n| format!("{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"a\": \"{}\"}}}}", "x".repeat(n))),
            (1usize..60).prop_map(|n| format!("[{}]", vec!["{\"query\": \"{ plans { code } }\"}"; n].join(","))),
        ]
        .prop_map(Body::Text),
        4 => (document(), variables.clone(), proptest::option::of(json_value()))
            .prop_map(|(query, variables, operation_name)| Body::Request { query, variables, operation_name }),
        6 => templated().prop_map(|(query, variables)| Body::Request { query, variables, operation_name: None }),
        1 => (templated(), re("[a-zA-Z0-9]{1,20}"), proptest::collection::vec((re("\\PC{0,10}"), re("\\PC{0,60}")), 0..3)).prop_map(
            |((query, variables), boundary, extra)| {
                let operations = json!({ "query": query, "variables": variables }).to_string();
                let mut parts = vec![("operations".to_string(), operations), ("map".to_string(), "{\"0\": [\"variables.a\"]}".to_string())];
                parts.extend(extra);
                Body::Multipart { boundary, parts }
            }
        ),
    ];
    (0usize..6, content_type, body).prop_map(|(token, content_type, body)| {
        let content_type = match &body {
            Body::Multipart { boundary, .. } => Some(format!("multipart/form-data; boundary={boundary}")),
            _ => content_type,
        };
        FuzzRequest { token, content_type, body }
    })
}

fn encode(body: &Body) -> Vec<u8> {
    match body {
        Body::Bytes(bytes) => bytes.clone(),
        Body::Text(text) => text.clone().into_bytes(),
        Body::Json(value) => value.to_string().into_bytes(),
        Body::Request { query, variables, operation_name } => {
            let mut request = json!({ "query": query, "variables": variables });
            if let Some(name) = operation_name {
                request["operationName"] = name.clone();
            }
            request.to_string().into_bytes()
        }
        Body::Multipart { boundary, parts } => {
            let mut out = String::new();
            for (name, value) in parts {
                out += &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
            }
            out += &format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
            );
            out.into_bytes()
        }
    }
}

/// What the server must do with any request: answer, below 500, in GraphQL's error shape.
/// Returns what the answer was, e.g. "200 data" or "200 INSUFFICIENT_CREDITS", for the summary.
async fn check_answer(client: &reqwest::Client, address: &str, tokens: &[Option<String>], request: &FuzzRequest) -> Result<String, String> {
    let body = encode(&request.body);
    let size = body.len();
    if let Ok(path) = std::env::var("CREDITS_FUZZ_LAST") {
        let _ = std::fs::write(&path, format!("{:?}\n{}", request.content_type, String::from_utf8_lossy(&body)));
    }
    let mut builder = client.post(format!("{address}/graphql")).body(body);
    if let Some(content_type) = &request.content_type {
        builder = builder.header("content-type", content_type);
    }
    if let Some(token) = &tokens[request.token] {
        builder = builder.bearer_auth(token);
    }
    let response = builder.send().await.map_err(|e| format!("no answer: {e:?}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("the answer broke off: {e:?}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if status.is_server_error() {
        return Err(format!("HTTP {status}: {text}"));
    }
    if status == 413 && size <= credits::http::MAX_BODY_BYTES {
        return Err(format!("413 for a body of {size} bytes"));
    }
    // 415 is for a body not declared as JSON, and only for that.
    let undeclared = !credits::graphql_http::negotiation::is_json_body(request.content_type.as_deref());
    if status == 415 && !undeclared {
        return Err(format!("415 for a body declared as JSON ({:?}): {text}", request.content_type));
    }
    if status != 200 && status != 400 && status != 413 && status != 415 {
        return Err(format!("HTTP {status}: {text}"));
    }
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| format!("HTTP {status}, not JSON ({e}): {text}"))?;
    if let Some(errors) = answer.get("errors") {
        let errors = errors.as_array().filter(|e| !e.is_empty()).ok_or_else(|| format!("errors is not a non-empty list: {answer}"))?;
        for error in errors {
            match error["extensions"]["code"].as_str() {
                Some("INTERNAL_SERVER_ERROR") => return Err(format!("an internal error: {answer}")),
                Some(_) => {}
                None => return Err(format!("an error without extensions.code: {answer}")),
            }
        }
        Ok(format!("{} {}", status.as_u16(), errors[0]["extensions"]["code"].as_str().unwrap_or_default()))
    } else if status != 200 || answer.get("data").is_none() {
        Err(format!("HTTP {status} with neither data nor errors: {answer}"))
    } else {
        Ok("200 data".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_requests() {
    let budget = budget();
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..5 {
        let account = format!("fz-{i}");
        app.create_account(&account).await;
        let granted = app.grant(&account, "1000", "PAID", None, &format!("seed-{i}")).await;
        assert!(granted["errors"].is_null(), "{granted}");
    }
    let coupon = app.gql(&app.admin, "mutation { createCoupon(input: {code: \"FUZZ-ONE\", credits: \"2\"}) { code } }", json!({})).await;
    assert!(coupon["errors"].is_null(), "{coupon}");
    let tokens: Vec<Option<String>> = vec![
        None,
        Some("not-a-token".to_string()),
        Some(app.user("fz-0")),
        Some(app.service.clone()),
        Some(app.admin.clone()),
        Some(app.service.clone()),
    ];
    // A fresh connection per request: a pooled one the server closed after an earlier answer
    // (a 413 sent before the body was read) would make a race of the client's, not the server's,
    // look like a dropped request.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let address = app.address.clone();
    let handle = tokio::runtime::Handle::current();
    let started = Instant::now();
    let (cases, answers) = tokio::task::spawn_blocking(move || {
        let config = Config { cases: 16, failure_persistence: None, max_shrink_iters: 300, max_shrink_time: 30_000, ..Config::default() };
        let mut master = TestRunner::new(config.clone());
        let strategy = fuzz_request();
        let count = Cell::new(0u64);
        let answers = std::cell::RefCell::new(std::collections::BTreeMap::<String, u64>::new());
        let mut first = true;
        while first || started.elapsed() < budget {
            first = false;
            let mut runner = TestRunner::new_with_rng(config.clone(), master.new_rng());
            let result = runner.run(&strategy, |request| {
                count.set(count.get() + 1);
                let answer = handle.block_on(check_answer(&client, &address, &tokens, &request)).map_err(TestCaseError::fail)?;
                *answers.borrow_mut().entry(answer).or_default() += 1;
                Ok(())
            });
            if let Err(e) = result {
                panic!("fuzz graphql found a failing request: {e}");
            }
        }
        (count.get(), answers.into_inner())
    })
    .await
    .expect("the fuzz run");
    let elapsed = started.elapsed();
    let health = app.client.get(format!("{}/health", app.address)).send().await.expect("the server still answers");
    assert_eq!(health.status(), 200);
    app.assert_audit_clean().await;
    let mut answers: Vec<(String, u64)> = answers.into_iter().collect();
    answers.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let answers: Vec<String> = answers.iter().map(|(what, n)| format!("{what}: {n}")).collect();
    println!("fuzz graphql: {cases} cases in {:.1} s ({})", elapsed.as_secs_f64(), answers.join(", "));
}

/// A finding of the fuzz, kept as a regression test (fixed by the bracket-nesting limit checked
/// before parsing, `graphql/limits.rs`): an argument literal nested ~290 to ~470
/// deep (`options: {a: {a: ... 1 ...}}`, or `[[[ ... 1 ... ]]]` ~350 to ~600 deep; under 2 KB, no
/// token needed) overflows the 2 MiB stack of a tokio worker in
/// `async_graphql_parser::parse::parse_value`, which recurses without the depth limit that
/// selection sets get, and the whole server process aborts (SIGABRT). Deeper literals are refused
/// by the parser, shallower ones are fine; seen on the debug build (the tests' and `cargo run`'s),
/// not on the release build, whose frames are smaller. It runs against the real binary, so the
/// abort fails this test instead of killing the test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_nested_hundreds_deep_does_not_kill_the_server() {
    let db = crate::support::TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::crash::Server::start(&db.url, dir.path(), "nested").await;
    let client = reqwest::Client::new();
    for depth in [300, 350, 400, 450] {
        for (open, close) in [("{a: ", "}"), ("[", "]")] {
            let query = format!("{{ priceQuote(feature: \"snap\", options: {}1{}) {{ total }} }}", open.repeat(depth), close.repeat(depth));
            let answer = client.post(format!("{}/graphql", server.address)).json(&json!({ "query": query })).send().await;
            let alive = server.child.try_wait().expect("the server's status").is_none();
            assert!(
                alive && answer.is_ok(),
                "{open}...{close} nested {depth} deep: the server {} ({answer:?})",
                if alive { "dropped the request" } else { "died" }
            );
            let answer: Value = answer.unwrap().json().await.expect("a JSON answer");
            assert!(answer["errors"][0]["extensions"]["code"].is_string(), "{answer}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Monthly statements: whatever the entries, the sums add up, per lot and overall
// ---------------------------------------------------------------------------------------------

type StatementInput = (Vec<i64>, Vec<(usize, Vec<(i64, i64)>, Option<usize>)>);

fn statement_strategy() -> impl Strategy<Value = StatementInput> {
    let line = (0i64..5, prop_oneof![-5_000_000i64..-1, 1i64..5_000_000]);
    (
        proptest::collection::vec(0i64..50_000_000, 5),
        proptest::collection::vec((0usize..6, proptest::collection::vec(line, 0..4), proptest::option::of(0usize..3)), 0..40),
    )
}

fn check_statement((opening, entries): StatementInput) -> Result<(), TestCaseError> {
    use credits::ledger::statement::{Builder, Entry, Line, LotInfo, Window, entry_line};
    use sha2::{Digest, Sha256};
    const KINDS: [&str; 6] = ["grant", "spend", "expire", "refund", "hold", "release"];
    let month = "2026-03".parse().unwrap();
    let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let window = Window::new(month, from + chrono::Duration::days(45)).unwrap();
    let mut builder = Builder::new(window, opening.iter().enumerate().map(|(lot, m)| (lot as i64, *m)));
    let mut text = String::new();
    for (i, (kind, lines, feature)) in entries.iter().enumerate() {
        let entry = Entry {
            id: i as i64 + 1,
            kind: KINDS[*kind].to_string(),
            operation: "op".into(),
            effective_at: from + chrono::Duration::hours(i as i64),
            recorded_at: from + chrono::Duration::hours(i as i64),
            amount_micros: lines.iter().map(|(_, d)| d).sum(),
            feature: feature.map(|f| format!("feature-{f}")),
            model: None,
            reason: None,
            lines: lines.iter().map(|&(lot_id, delta_micros)| Line { lot_id, delta_micros }).collect(),
        };
        text.push_str(&entry_line(&entry));
        builder.add(&entry).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let lots =
        (0..5).map(|id| (id, LotInfo { source: "event".into(), class: "paid".into(), granted_at: from, expires_at: None })).collect();
    let statement = builder.finish(&lots).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let net: i64 = statement.movements.iter().map(|(_, m)| m).sum();
    prop_assert_eq!(statement.opening + net, statement.closing);
    prop_assert_eq!(statement.opening, opening.iter().sum::<i64>());
    for row in &statement.lots {
        prop_assert_eq!(row.opening + row.credited - row.debited - row.expired, row.closing);
    }
    prop_assert_eq!(statement.lots.iter().map(|r| r.closing).sum::<i64>(), statement.closing);
    prop_assert_eq!(statement.entry_count, entries.len() as u64);
    let digest: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    prop_assert_eq!(statement.digest, digest);
    Ok(())
}

/// A month parses exactly when it is `YYYY-MM` of a real month from 2000 on, and writes back as given.
fn check_month(text: String) -> Result<(), TestCaseError> {
    let parsed = text.parse::<credits::ledger::statement::Month>();
    let shaped = text.is_ascii()
        && text.len() == 7
        && text.as_bytes()[4] == b'-'
        && text[..4].bytes().all(|b| b.is_ascii_digit())
        && text[5..].bytes().all(|b| b.is_ascii_digit())
        && text[..4].parse::<i32>().is_ok_and(|y| y >= 2000)
        && text[5..].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    prop_assert_eq!(parsed.is_ok(), shaped, "{:?}", text);
    if let Ok(month) = parsed {
        prop_assert_eq!(month.to_string(), text);
    }
    Ok(())
}
