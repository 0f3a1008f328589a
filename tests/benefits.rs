//! `Account.benefits`: the promotions applied to an account now (issue 22, "Benefits in use").
//! Each kind appears while it applies and is gone once it no longer does, on each preset where
//! it exists, through the real API.

use crate::on_both;
use crate::support::{Backend, TestApp, buy, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

const FIELDS: &str = "benefits { kind credits percent startsAt endsAt code name }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// An instant field of a benefit, parsed (the API writes `+00:00`).
fn instant(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(at)
}

async fn account_on(app: &TestApp, id: &str, plan: Option<&str>, referral_code: Option<&str>) -> Value {
    let r = app
        .gql(
            &app.service,
            "mutation($id: ID!, $p: String, $c: String) { createAccount(input: {externalId: $id, plan: $p, referralCode: $c}) { created account { referralCode } } }",
            json!({ "id": id, "p": plan, "c": referral_code }),
        )
        .await;
    assert_eq!(r["data"]["createAccount"]["created"], json!(true), "{r}");
    r["data"]["createAccount"]["account"].clone()
}

/// Every benefit of the account, read by the account's own user token.
async fn benefits(app: &TestApp, account: &str) -> Vec<Value> {
    let r = app.gql(&app.user(account), &format!("{{ me {{ {FIELDS} }} }}"), json!({})).await;
    r["data"]["me"]["benefits"].as_array().unwrap_or_else(|| panic!("{r}")).clone()
}

/// The benefits of one kind, in the order the API gives them.
async fn of_kind(app: &TestApp, account: &str, kind: &str) -> Vec<Value> {
    benefits(app, account).await.into_iter().filter(|b| b["kind"] == json!(kind)).collect()
}

async fn change_plan(app: &TestApp, account: &str, plan: &str, key: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($a: ID!, $p: String!, $k: String!) { changePlan(input: {accountId: $a, plan: $p, idempotencyKey: $k}) { account { plan } } }",
            json!({ "a": account, "p": plan, "k": key }),
        )
        .await;
    assert_eq!(r["data"]["changePlan"]["account"]["plan"], json!(plan), "{r}");
}

async fn plan_credits_show_the_current_period_of_plans_that_grant_credits(backend: Backend) {
    // arkain: calendar months, on every plan.
    let arkain = TestApp::spawn_with(backend, "arkain").await;
    arkain.clock.set(at("2026-03-10T08:00:00Z"));
    account_on(&arkain, "a", None, None).await;
    let plan = of_kind(&arkain, "a", "PLAN_CREDITS").await;
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!((&plan[0]["credits"], &plan[0]["code"], &plan[0]["name"]), (&json!("50"), &json!("free"), &json!("Free")));
    assert_eq!(plan[0]["percent"], Value::Null);
    assert_eq!(instant(&plan[0]["startsAt"]), Some(at("2026-03-01T00:00:00Z")));
    assert_eq!(instant(&plan[0]["endsAt"]), Some(at("2026-04-01T00:00:00Z")));
    arkain.clock.set(at("2026-04-02T00:00:00Z"));
    let april = of_kind(&arkain, "a", "PLAN_CREDITS").await;
    assert_eq!(instant(&april[0]["startsAt"]), Some(at("2026-04-01T00:00:00Z")), "the next month's period");
    assert_eq!(instant(&april[0]["endsAt"]), Some(at("2026-05-01T00:00:00Z")));
    change_plan(&arkain, "a", "membership", "to-membership").await;
    let membership = of_kind(&arkain, "a", "PLAN_CREDITS").await;
    assert_eq!((&membership[0]["credits"], &membership[0]["code"]), (&json!("1000"), &json!("membership")));

    // carat: a subscription's month counts from its start; the free plan grants none.
    let carat = TestApp::spawn_with(backend, "carat").await;
    carat.clock.set(at("2026-01-31T10:00:00Z"));
    account_on(&carat, "s", Some("plus"), None).await;
    let plus = of_kind(&carat, "s", "PLAN_CREDITS").await;
    assert_eq!((&plus[0]["credits"], &plus[0]["code"], &plus[0]["name"]), (&json!("10000"), &json!("plus"), &json!("Plus")));
    assert_eq!(instant(&plus[0]["startsAt"]), Some(at("2026-01-31T10:00:00Z")));
    assert_eq!(instant(&plus[0]["endsAt"]), Some(at("2026-02-28T10:00:00Z")), "a calendar month from the anchor, clamped");
    carat.clock.set(at("2026-02-28T10:00:00Z"));
    let renewed = of_kind(&carat, "s", "PLAN_CREDITS").await;
    assert_eq!(instant(&renewed[0]["endsAt"]), Some(at("2026-03-31T10:00:00Z")), "renewed from the original anchor");
    change_plan(&carat, "s", "free", "to-free").await;
    assert_eq!(of_kind(&carat, "s", "PLAN_CREDITS").await, Vec::<Value>::new(), "the free plan grants no plan credits");

    // archipelag: no plan grants credits, and nothing else applies to a new account.
    let archipelag = TestApp::spawn_with(backend, "archipelag").await;
    account_on(&archipelag, "p", None, None).await;
    assert_eq!(benefits(&archipelag, "p").await, Vec::<Value>::new());
}

async fn daily_free_credits_show_on_plans_that_have_them(backend: Backend) {
    let carat = TestApp::spawn_with(backend, "carat").await;
    carat.clock.set(at("2026-03-10T15:30:00Z"));
    account_on(&carat, "f", None, None).await;
    let daily = of_kind(&carat, "f", "DAILY_FREE_CREDITS").await;
    assert_eq!(daily.len(), 1, "{daily:?}");
    assert_eq!(daily[0]["credits"], json!("100"));
    assert_eq!(instant(&daily[0]["startsAt"]), Some(at("2026-03-10T00:00:00Z")));
    assert_eq!(instant(&daily[0]["endsAt"]), Some(at("2026-03-11T00:00:00Z")), "they do not carry over");
    // Still there once today's are taken: they come again tomorrow.
    assert!(carat.spend("f", "100", "all-of-today").await["errors"].is_null());
    carat.clock.set(at("2026-03-11T00:00:00Z"));
    let tomorrow = of_kind(&carat, "f", "DAILY_FREE_CREDITS").await;
    assert_eq!(instant(&tomorrow[0]["endsAt"]), Some(at("2026-03-12T00:00:00Z")));
    change_plan(&carat, "f", "plus", "to-plus").await;
    assert_eq!(of_kind(&carat, "f", "DAILY_FREE_CREDITS").await, Vec::<Value>::new(), "paid plans have none");

    for preset in ["arkain", "archipelag"] {
        let app = TestApp::spawn_with(backend, preset).await;
        account_on(&app, "x", None, None).await;
        assert_eq!(of_kind(&app, "x", "DAILY_FREE_CREDITS").await, Vec::<Value>::new(), "{preset}");
    }
}

async fn lucky_credits_show_while_the_promotion_runs_for_eligible_accounts(backend: Backend) {
    let carat = TestApp::spawn_with(backend, "carat").await;
    carat.clock.set(at("2026-04-01T12:00:00Z"));
    account_on(&carat, "plus", Some("plus"), None).await;
    account_on(&carat, "free", None, None).await;
    let lucky = of_kind(&carat, "plus", "LUCKY_CREDITS").await;
    assert_eq!(lucky.len(), 1, "{lucky:?}");
    assert_eq!(lucky[0]["credits"], json!("700"), "the plan's maximum before today's claim");
    assert_eq!(instant(&lucky[0]["endsAt"]), Some(at("2026-05-01T00:00:00Z")), "the end of the promotion's last day, UTC");
    assert_eq!(lucky[0]["startsAt"], Value::Null, "the preset's promotion has no start date");
    assert_eq!(of_kind(&carat, "free", "LUCKY_CREDITS").await, Vec::<Value>::new(), "for paid subscribers only");

    let claim = carat
        .gql(
            &carat.user("plus"),
            "mutation { claimLuckyCredits(input: {accountId: \"plus\", idempotencyKey: \"l-1\"}) { amount } }",
            json!({}),
        )
        .await;
    let claimed = claim["data"]["claimLuckyCredits"]["amount"].clone();
    assert!(claimed.is_string(), "{claim}");
    assert_eq!(of_kind(&carat, "plus", "LUCKY_CREDITS").await[0]["credits"], claimed, "today's claimed drop");
    carat.clock.set(at("2026-04-02T00:00:00Z"));
    assert_eq!(of_kind(&carat, "plus", "LUCKY_CREDITS").await[0]["credits"], json!("700"), "a new day");
    carat.clock.set(at("2026-04-30T23:59:59Z"));
    assert_eq!(of_kind(&carat, "plus", "LUCKY_CREDITS").await.len(), 1, "the promotion's last second");
    carat.clock.set(at("2026-05-01T00:00:00Z"));
    assert_eq!(of_kind(&carat, "plus", "LUCKY_CREDITS").await, Vec::<Value>::new(), "the promotion has ended");

    // No lucky credits on the other presets, paid plan or not.
    let arkain = TestApp::spawn_with(backend, "arkain").await;
    arkain.clock.set(at("2026-04-01T12:00:00Z"));
    account_on(&arkain, "m", Some("membership"), None).await;
    assert_eq!(of_kind(&arkain, "m", "LUCKY_CREDITS").await, Vec::<Value>::new());
    let archipelag = TestApp::spawn_with(backend, "archipelag").await;
    archipelag.clock.set(at("2026-04-01T12:00:00Z"));
    account_on(&archipelag, "p", None, None).await;
    assert_eq!(of_kind(&archipelag, "p", "LUCKY_CREDITS").await, Vec::<Value>::new());
}

async fn the_first_purchase_bonus_shows_until_a_purchase_is_paid(backend: Backend) {
    let arkain = TestApp::spawn_with(backend, "arkain").await;
    account_on(&arkain, "a", None, None).await;
    let bonus = of_kind(&arkain, "a", "FIRST_PURCHASE_BONUS").await;
    assert_eq!(bonus.len(), 1, "{bonus:?}");
    assert_eq!((&bonus[0]["percent"], &bonus[0]["credits"]), (&json!("30"), &Value::Null));
    // A purchase not paid yet does not count.
    let pending = arkain
        .gql(
            &arkain.service,
            "mutation { purchaseCredits(input: {accountId: \"a\", credits: \"100\", idempotencyKey: \"pending\"}) { status } }",
            json!({}),
        )
        .await;
    assert_eq!(pending["data"]["purchaseCredits"]["status"], json!("PENDING"), "{pending}");
    assert_eq!(of_kind(&arkain, "a", "FIRST_PURCHASE_BONUS").await.len(), 1);
    buy(&arkain, "a", Some("100"), None, "first").await;
    assert_eq!(of_kind(&arkain, "a", "FIRST_PURCHASE_BONUS").await, Vec::<Value>::new(), "the bonus came with that purchase");

    for preset in ["carat", "archipelag"] {
        let app = TestApp::spawn_with(backend, preset).await;
        account_on(&app, "x", None, None).await;
        assert_eq!(of_kind(&app, "x", "FIRST_PURCHASE_BONUS").await, Vec::<Value>::new(), "{preset}");
    }
}

async fn referral_bonuses_show_while_on_hold(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let alice = account_on(&app, "alice", None, None).await;
    let code = alice["referralCode"].as_str().unwrap().to_string();
    account_on(&app, "bob", None, Some(&code)).await;
    account_on(&app, "carol", None, Some(&code)).await;
    assert_eq!(of_kind(&app, "alice", "REFERRAL_BONUS").await, Vec::<Value>::new(), "no qualifying purchase yet");

    // Bob's first purchase is $10: both sides' 600 are held for 7 days.
    let start = app.clock.now();
    buy(&app, "bob", Some("500"), None, "bob-1").await;
    let bob = of_kind(&app, "bob", "REFERRAL_BONUS").await;
    assert_eq!(bob.len(), 1, "{bob:?}");
    assert_eq!(bob[0]["credits"], json!("600"));
    assert_eq!(instant(&bob[0]["endsAt"]), Some(start + Duration::days(7)), "released when the hold ends");
    app.clock.set(start + Duration::hours(1));
    let carol_purchase = buy(&app, "carol", Some("500"), None, "carol-1").await;
    let held = of_kind(&app, "alice", "REFERRAL_BONUS").await;
    assert_eq!(held.len(), 2, "one per friend: {held:?}");
    assert_eq!(instant(&held[0]["endsAt"]), Some(start + Duration::hours(1) + Duration::days(7)), "newest first");
    assert_eq!(instant(&held[1]["endsAt"]), Some(start + Duration::days(7)));

    // Carol's purchase refunded: her bonus will be cancelled, so it is no longer shown.
    let refund = app
        .gql(
            &app.service,
            "mutation($id: ID!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: \"refund\"}) { purchase { status } } }",
            json!({ "id": carol_purchase }),
        )
        .await;
    assert!(refund["errors"].is_null(), "{refund}");
    assert_eq!(of_kind(&app, "carol", "REFERRAL_BONUS").await, Vec::<Value>::new());
    let left = of_kind(&app, "alice", "REFERRAL_BONUS").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(instant(&left[0]["endsAt"]), Some(start + Duration::days(7)));

    // Released: granted, no longer on hold.
    app.clock.set(start + Duration::days(7));
    assert_eq!(app.ledger.release_referral_bonuses(app.clock.now(), 100).await.unwrap(), 1);
    assert_eq!(of_kind(&app, "alice", "REFERRAL_BONUS").await, Vec::<Value>::new());
    assert_eq!(of_kind(&app, "bob", "REFERRAL_BONUS").await, Vec::<Value>::new());
    app.assert_audit_clean().await;
}

const CREATE_COUPON: &str = "mutation($in: CreateCouponInput!) { createCoupon(input: $in) { code } }";
const REDEEM: &str =
    "mutation($a: ID!, $c: String!, $k: String!) { redeemCoupon(input: {accountId: $a, code: $c, idempotencyKey: $k}) { amount } }";

async fn coupon(app: &TestApp, code: &str, credits: &str, valid_for: &str) {
    let r = app.gql(&app.admin, CREATE_COUPON, json!({ "in": { "code": code, "credits": credits, "validFor": valid_for } })).await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn redeem(app: &TestApp, account: &str, code: &str) {
    let r = app.gql(&app.user(account), REDEEM, json!({ "a": account, "c": code, "k": code })).await;
    assert!(r["errors"].is_null(), "{r}");
}

async fn coupon_lots_show_until_used_up_or_expired(backend: Backend) {
    // Used up: on the ledger fixture, where the coupon's lot is all there is to spend.
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let redeemed_at = app.clock.now();
    coupon(&app, "Welcome10", "10", "30 days").await;
    redeem(&app, "a", "welcome10").await;
    let lots = of_kind(&app, "a", "COUPON").await;
    assert_eq!(lots.len(), 1, "{lots:?}");
    assert_eq!((&lots[0]["code"], &lots[0]["credits"]), (&json!("WELCOME10"), &json!("10")));
    assert_eq!(instant(&lots[0]["endsAt"]), Some(redeemed_at + Duration::days(30)));
    assert_eq!(instant(&lots[0]["startsAt"]), Some(redeemed_at));
    assert!(app.spend("a", "4", "s-1").await["errors"].is_null());
    assert_eq!(of_kind(&app, "a", "COUPON").await[0]["credits"], json!("6"), "what remains in the lot");
    assert!(app.spend("a", "6", "s-2").await["errors"].is_null());
    assert_eq!(of_kind(&app, "a", "COUPON").await, Vec::<Value>::new(), "used up");

    // Expired, on every preset: gone at its expiry instant, before any worker has run.
    for preset in ["arkain", "carat", "archipelag"] {
        let app = TestApp::spawn_with(backend, preset).await;
        account_on(&app, "x", None, None).await;
        let start = app.clock.now();
        coupon(&app, "MONTH", "10", "30 days").await;
        coupon(&app, "DAY", "5", "1 day").await;
        redeem(&app, "x", "MONTH").await;
        redeem(&app, "x", "DAY").await;
        let lots = of_kind(&app, "x", "COUPON").await;
        let codes: Vec<&Value> = lots.iter().map(|b| &b["code"]).collect();
        assert_eq!(codes, [&json!("DAY"), &json!("MONTH")], "{preset}: newest first");
        assert_eq!(lots[0]["credits"], json!("5"), "{preset}");
        app.clock.set(start + Duration::days(1));
        let lots = of_kind(&app, "x", "COUPON").await;
        let codes: Vec<&Value> = lots.iter().map(|b| &b["code"]).collect();
        assert_eq!(codes, [&json!("MONTH")], "{preset}: the day's coupon has expired");
    }
}

async fn a_user_reads_only_its_own_benefits(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    account_on(&app, "a", None, None).await;
    account_on(&app, "b", None, None).await;
    let query = format!("query($id: ID!) {{ account(id: $id) {{ {FIELDS} }} }}");
    let other = app.gql(&app.user("a"), &query, json!({ "id": "b" })).await;
    assert_eq!(error_code(&other), "FORBIDDEN", "{other}");
    let own = app.gql(&app.user("a"), &query, json!({ "id": "a" })).await;
    assert!(own["data"]["account"]["benefits"].is_array(), "{own}");
    for token in [&app.service, &app.admin] {
        let any = app.gql(token, &query, json!({ "id": "b" })).await;
        assert_eq!(any["data"]["account"]["benefits"], own["data"]["account"]["benefits"], "{any}");
    }
}

on_both!(
    plan_credits_show_the_current_period_of_plans_that_grant_credits,
    daily_free_credits_show_on_plans_that_have_them,
    lucky_credits_show_while_the_promotion_runs_for_eligible_accounts,
    the_first_purchase_bonus_shows_until_a_purchase_is_paid,
    referral_bonuses_show_while_on_hold,
    coupon_lots_show_until_used_up_or_expired,
    a_user_reads_only_its_own_benefits,
);
