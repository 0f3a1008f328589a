//! Operators' corrections (issue 25): `voidLot` through the real API on both databases. What
//! remains of a lot leaves the account in a VOID entry with the reason and the operator's name;
//! a replay is the first outcome; an empty, expired or held lot is refused and nothing changes;
//! corrections need a named admin; concurrent voids of one lot void it once. `adjustCredits`
//! and `changeLotExpiry` likewise.

use crate::on_both;
use crate::support::{ADMIN_SUBJECT, Backend, TestApp, error_code};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const VOID: &str = "mutation($l: ID!, $r: String!, $k: String!) { voidLot(input: {lotId: $l, reason: $r, idempotencyKey: $k}) { lotId accountId voided sequence } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// An admin token as issued before tokens named their operator (`credits token` no longer
/// makes one): still accepted, recorded as "admin", but not enough for a correction.
fn unnamed_admin_token() -> String {
    let now = Utc::now().timestamp();
    let claims = json!({ "role": "admin", "iss": credits::auth::ISSUER, "aud": credits::auth::AUDIENCE, "iat": now, "exp": now + 600 });
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET))
        .unwrap()
}

async fn void(app: &TestApp, token: &str, lot: &str, key: &str) -> Value {
    app.gql(token, VOID, json!({ "l": lot, "r": "granted to the wrong account", "k": key })).await
}

async fn lot_id(app: &TestApp, account: &str, amount: &str, key: &str, expires_at: Option<DateTime<Utc>>) -> String {
    let granted = app.grant(account, amount, "PROMOTIONAL", expires_at, key).await;
    granted["data"]["grantCredits"]["lotId"].as_str().unwrap_or_else(|| panic!("{granted}")).to_string()
}

/// A reservation of 3 credits on account "a": its id.
async fn reserve_3(app: &TestApp) -> String {
    let query = "mutation { reserveCredits(input: {accountId: \"a\", amount: \"3\", feature: \"chat\", idempotencyKey: \"h1\"}) { reservationId } }";
    let held = app.gql(&app.service, query, json!({})).await;
    held["data"]["reserveCredits"]["reservationId"].as_str().unwrap_or_else(|| panic!("{held}")).to_string()
}

async fn release(app: &TestApp, reservation: &str) {
    let query = "mutation($r: ID!) { releaseReservation(input: {reservationId: $r, idempotencyKey: \"r1\"}) { released } }";
    let released = app.gql(&app.service, query, json!({ "r": reservation })).await;
    assert!(released["errors"].is_null(), "{released}");
}

/// The account's newest journal entry, as its history shows it.
async fn latest_entry(app: &TestApp, account: &str) -> Value {
    let query = "query($a: ID!) { account(id: $a) { history(first: 1) { nodes { sequence kind amount reason actor } } } }";
    let history = app.gql(&app.service, query, json!({ "a": account })).await;
    history["data"]["account"]["history"]["nodes"][0].clone()
}

async fn remaining(app: &TestApp, account: &str, lot: &str) -> String {
    let query = "query($a: ID!) { account(id: $a) { lots(first: 50, includeClosed: true) { nodes { id remaining } } } }";
    let r = app.gql(&app.service, query, json!({ "a": account })).await;
    let lots = r["data"]["account"]["lots"]["nodes"].as_array().unwrap_or_else(|| panic!("{r}"));
    let row = lots.iter().find(|l| l["id"] == json!(lot)).unwrap_or_else(|| panic!("{r}"));
    row["remaining"].as_str().unwrap().to_string()
}

async fn a_void_takes_what_remains_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", None).await;
    assert!(app.grant("a", "5", "PAID", None, "g-2").await["errors"].is_null());
    assert!(app.spend("a", "4", "s-1").await["errors"].is_null());
    let before = app.balance("a").await;
    let remaining_before = remaining(&app, "a", &lot).await;
    assert_ne!(remaining_before, "0");

    let voided = void(&app, &app.admin, &lot, "v-1").await;
    assert!(voided["errors"].is_null(), "{voided}");
    let payload = &voided["data"]["voidLot"];
    assert_eq!((&payload["accountId"], &payload["lotId"], &payload["voided"]), (&json!("a"), &json!(lot), &json!(remaining_before)));
    assert_eq!(remaining(&app, "a", &lot).await, "0");
    // The balance fell by exactly what was voided.
    let after = app.balance("a").await;
    let credits = |s: &str| credits::ledger::Credits::parse_str(s).unwrap();
    assert_eq!(credits(&before).checked_sub(credits(&remaining_before)).unwrap(), credits(&after));
    let remaining_of_lot = remaining_before;

    // In the history: a VOID entry with the reason and the operator's name.
    let entry = &latest_entry(&app, "a").await;
    assert_eq!(
        (&entry["kind"], &entry["reason"], &entry["actor"], &entry["sequence"]),
        (&json!("VOID"), &json!("granted to the wrong account"), &json!(ADMIN_SUBJECT), &payload["sequence"]),
        "{entry}"
    );
    assert_eq!(entry["amount"], json!(format!("-{remaining_of_lot}")), "{entry}");

    // A replay is the first outcome and changes nothing; the key with another lot conflicts.
    assert_eq!(void(&app, &app.admin, &lot, "v-1").await, voided);
    assert_eq!(app.balance("a").await, after);
    let other = lot_id(&app, "a", "1", "g-3", None).await;
    assert_eq!(error_code(&void(&app, &app.admin, &other, "v-1").await), "IDEMPOTENCY_CONFLICT");
    // A second void of the same lot finds nothing left.
    let again = void(&app, &app.admin, &lot, "v-2").await;
    assert_eq!(error_code(&again), "INVALID_STATE", "{again}");
    assert!(again["errors"][0]["message"].as_str().unwrap().contains("nothing remains"), "{again}");
    app.assert_audit_clean().await;
}

async fn what_cannot_be_voided_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", Some(at("2026-11-10T12:00:00Z"))).await;

    // Held: a reservation holds credits drawn from the lot.
    let reservation = reserve_3(&app).await;
    let refused = void(&app, &app.admin, &lot, "v-held").await;
    assert_eq!(error_code(&refused), "INVALID_STATE", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("held by a reservation"), "{refused}");
    assert_eq!(app.balance("a").await, "10", "the total counts held credits; nothing was voided");
    // Released, the lot can be voided whole (under a new key: the refusal is the old one's outcome).
    release(&app, &reservation).await;
    assert_eq!(void(&app, &app.admin, &lot, "v-held").await, refused, "a refusal is the key's outcome too");

    // Expired: the write-off owns it, whether it ran yet or not.
    let expiring = lot_id(&app, "a", "2", "g-2", Some(at("2026-11-10T11:00:00Z"))).await;
    app.clock.set(at("2026-11-10T11:00:00Z"));
    let expired = void(&app, &app.admin, &expiring, "v-expired").await;
    assert_eq!(error_code(&expired), "INVALID_STATE", "{expired}");
    assert!(expired["errors"][0]["message"].as_str().unwrap().contains("expired"), "{expired}");

    // Unknown lots, bad input, and who may void.
    assert_eq!(error_code(&void(&app, &app.admin, "999999", "v-x").await), "NOT_FOUND");
    assert_eq!(error_code(&void(&app, &app.admin, "not-a-lot", "v-x").await), "NOT_FOUND");
    let blank = app.gql(&app.admin, VOID, json!({ "l": lot, "r": "  ", "k": "v-blank" })).await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT", "{blank}");
    let unnamed = unnamed_admin_token();
    for token in [&app.service, &app.user("a"), &unnamed] {
        let r = void(&app, token, &lot, "v-who").await;
        assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    }
    assert_eq!(app.balance("a").await, "10", "nothing changed");

    let whole = void(&app, &app.admin, &lot, "v-whole").await;
    assert_eq!(whole["data"]["voidLot"]["voided"], json!("10"), "{whole}");
    assert_eq!(app.balance("a").await, "0");
    app.assert_audit_clean().await;
}

/// Six operators void one lot at once, each under their own key: one void takes it, the others
/// find nothing left; the lot is voided once.
async fn concurrent_voids_of_one_lot_void_it_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", None).await;
    let results = futures::future::join_all((0..6).map(|i| {
        let (app, lot) = (&app, lot.clone());
        async move { void(app, &app.admin, &lot, &format!("v-{i}")).await }
    }))
    .await;
    let done: Vec<_> = results.iter().filter(|r| r["errors"].is_null()).collect();
    assert_eq!(done.len(), 1, "{results:?}");
    assert_eq!(done[0]["data"]["voidLot"]["voided"], json!("10"));
    for r in results.iter().filter(|r| !r["errors"].is_null()) {
        assert_eq!(error_code(r), "INVALID_STATE", "{r}");
    }
    assert_eq!(app.balance("a").await, "0");
    app.assert_audit_clean().await;
}

const ADJUST: &str = "mutation($a: ID!, $amt: CreditAmount!, $l: ID, $k: String!) { adjustCredits(input: {accountId: $a, amount: $amt, lotId: $l, reason: \"chargeback\", idempotencyKey: $k}) { amount lots { lotId amount } sequence } }";

async fn adjust(app: &TestApp, token: &str, account: &str, amount: &str, lot: Option<&str>, key: &str) -> Value {
    app.gql(token, ADJUST, json!({ "a": account, "amt": amount, "l": lot, "k": key })).await
}

/// A manual debit takes from the named lot or in the program's order, all or nothing, in an
/// ADJUST entry with the reason and the operator; a replay is the first outcome.
async fn a_manual_debit_takes_from_the_named_lot_or_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    app.create_account("b").await;
    let promo = lot_id(&app, "a", "4", "g-1", None).await;
    let paid = app.grant("a", "10", "PAID", None, "g-2").await["data"]["grantCredits"]["lotId"].as_str().unwrap().to_string();
    let other = lot_id(&app, "b", "5", "g-3", None).await;

    let from_paid = adjust(&app, &app.admin, "a", "3", Some(&paid), "d-1").await;
    assert!(from_paid["errors"].is_null(), "{from_paid}");
    assert_eq!(from_paid["data"]["adjustCredits"]["lots"], json!([{ "lotId": paid, "amount": "3" }]));
    assert_eq!(remaining(&app, "a", &paid).await, "7");
    assert_eq!(remaining(&app, "a", &promo).await, "4", "the named lot only");
    assert_eq!(adjust(&app, &app.admin, "a", "3", Some(&paid), "d-1").await, from_paid, "a replay");
    assert_eq!(app.balance("a").await, "11");

    // In the program's order: the whole amount, from as many lots as it takes.
    let in_order = adjust(&app, &app.admin, "a", "9", None, "d-2").await;
    assert!(in_order["errors"].is_null(), "{in_order}");
    let lots = in_order["data"]["adjustCredits"]["lots"].as_array().unwrap();
    assert_eq!(lots.len(), 2, "{in_order}");
    assert_eq!(app.balance("a").await, "2");
    let entry = &latest_entry(&app, "a").await;
    assert_eq!(
        (&entry["kind"], &entry["amount"], &entry["reason"], &entry["actor"], &entry["sequence"]),
        (&json!("ADJUST"), &json!("-9"), &json!("chargeback"), &json!(ADMIN_SUBJECT), &in_order["data"]["adjustCredits"]["sequence"]),
        "{entry}"
    );

    // All or nothing; another account's lot is not found; bad amounts are input errors.
    let short = adjust(&app, &app.admin, "a", "3", None, "d-3").await;
    assert_eq!(error_code(&short), "INSUFFICIENT_CREDITS", "{short}");
    assert_eq!(short["errors"][0]["extensions"]["available"], json!("2"), "{short}");
    assert_eq!(error_code(&adjust(&app, &app.admin, "a", "1", Some(&other), "d-4").await), "NOT_FOUND");
    assert_eq!(error_code(&adjust(&app, &app.admin, "a", "0", None, "d-5").await), "BAD_USER_INPUT");
    assert_eq!(error_code(&adjust(&app, &app.service, "a", "1", None, "d-6").await), "FORBIDDEN");
    assert_eq!(error_code(&adjust(&app, &unnamed_admin_token(), "a", "1", None, "d-6").await), "FORBIDDEN");
    assert_eq!(app.balance("a").await, "2");
    assert_eq!(app.balance("b").await, "5");
    app.assert_audit_clean().await;
}

const EXPIRY: &str = "mutation($l: ID!, $e: DateTime!, $k: String!) { changeLotExpiry(input: {lotId: $l, expiresAt: $e, reason: \"goodwill\", idempotencyKey: $k}) { lotId accountId previousExpiresAt expiresAt expired sequence } }";

async fn change_expiry(app: &TestApp, token: &str, lot: &str, to: &str, key: &str) -> Value {
    app.gql(token, EXPIRY, json!({ "l": lot, "e": to, "k": key })).await
}

async fn expiry_of(app: &TestApp, account: &str, lot: &str) -> Value {
    let query = "query($a: ID!) { account(id: $a) { lots(first: 50, includeClosed: true) { nodes { id expiresAt } } } }";
    let r = app.gql(&app.service, query, json!({ "a": account })).await;
    let lots = r["data"]["account"]["lots"]["nodes"].as_array().unwrap_or_else(|| panic!("{r}"));
    lots.iter().find(|l| l["id"] == json!(lot)).unwrap_or_else(|| panic!("{r}"))["expiresAt"].clone()
}

/// An expiry moved later keeps the lot spendable past its old expiry, in an EXPIRY_CHANGE entry
/// that says from what to what, by whom and why; a replay is the first outcome.
async fn an_expiry_moves_later_and_the_history_says_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", Some(at("2026-11-10T12:00:00Z"))).await;

    let moved = change_expiry(&app, &app.admin, &lot, "2026-12-31T00:00:00Z", "e-1").await;
    assert!(moved["errors"].is_null(), "{moved}");
    let payload = &moved["data"]["changeLotExpiry"];
    assert_eq!(payload["previousExpiresAt"], json!("2026-11-10T12:00:00+00:00"), "{moved}");
    assert_eq!(payload["expiresAt"], json!("2026-12-31T00:00:00+00:00"), "{moved}");
    assert_eq!((&payload["expired"], &payload["accountId"]), (&json!("0"), &json!("a")));
    assert_eq!(expiry_of(&app, "a", &lot).await, payload["expiresAt"]);

    let query = "query($a: ID!) { account(id: $a) { history(first: 1) { nodes { sequence kind amount reason actor lines { lotId amount } expiryChange { lotId previousExpiresAt expiresAt } } } } }";
    let history = app.gql(&app.service, query, json!({ "a": "a" })).await;
    let entry = &history["data"]["account"]["history"]["nodes"][0];
    assert_eq!(
        (&entry["kind"], &entry["amount"], &entry["reason"], &entry["actor"], &entry["sequence"]),
        (&json!("EXPIRY_CHANGE"), &json!("0"), &json!("goodwill"), &json!(ADMIN_SUBJECT), &payload["sequence"]),
        "{entry}"
    );
    assert_eq!(entry["lines"], json!([]), "it moves no credits: {entry}");
    assert_eq!(
        entry["expiryChange"],
        json!({ "lotId": lot, "previousExpiresAt": payload["previousExpiresAt"], "expiresAt": payload["expiresAt"] }),
        "{entry}"
    );

    // A replay is the first outcome; the key with another instant conflicts; the same expiry
    // again under a new key is refused.
    assert_eq!(change_expiry(&app, &app.admin, &lot, "2026-12-31T00:00:00Z", "e-1").await, moved);
    assert_eq!(error_code(&change_expiry(&app, &app.admin, &lot, "2027-01-31T00:00:00Z", "e-1").await), "IDEMPOTENCY_CONFLICT");
    let same = change_expiry(&app, &app.admin, &lot, "2026-12-31T00:00:00Z", "e-2").await;
    assert_eq!(error_code(&same), "INVALID_STATE", "{same}");

    // Past its old expiry the lot still counts, and the expiry job leaves it alone.
    app.clock.set(at("2026-11-20T00:00:00Z"));
    let written_off = app.ledger.expire_due(app.clock.now(), 1000).await.unwrap();
    assert_eq!(written_off.lots, 0);
    assert_eq!(app.balance("a").await, "10");
    assert!(app.spend("a", "4", "s-1").await["errors"].is_null());
    // Moved earlier again (still in the future), it expires then, and the job writes it off.
    let earlier = change_expiry(&app, &app.admin, &lot, "2026-11-21T00:00:00Z", "e-3").await;
    assert_eq!(earlier["data"]["changeLotExpiry"]["expired"], json!("0"), "{earlier}");
    app.clock.set(at("2026-11-21T00:00:00Z"));
    assert_eq!(app.balance("a").await, "0", "an expired lot never counts, written off or not");
    let written_off = app.ledger.expire_due(app.clock.now(), 1000).await.unwrap();
    assert_eq!((written_off.lots, written_off.credits.to_string()), (1, "6".to_string()));
    // Expired, it is never reopened.
    let reopen = change_expiry(&app, &app.admin, &lot, "2027-01-01T00:00:00Z", "e-4").await;
    assert_eq!(error_code(&reopen), "INVALID_STATE", "{reopen}");
    assert!(reopen["errors"][0]["message"].as_str().unwrap().contains("never reopened"), "{reopen}");
    app.assert_audit_clean().await;
}

/// An expiry moved to now, or into the past, expires the lot at once, dated now: what remains is
/// written off with the operator's name, and what a reservation held from it expires when the
/// reservation gives it back.
async fn an_expiry_moved_into_the_past_expires_the_lot_now(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", None).await;
    let reservation = reserve_3(&app).await;

    let moved = change_expiry(&app, &app.admin, &lot, "2026-11-01T00:00:00Z", "e-1").await;
    assert!(moved["errors"].is_null(), "{moved}");
    let payload = &moved["data"]["changeLotExpiry"];
    assert_eq!((&payload["previousExpiresAt"], &payload["expiresAt"]), (&json!(null), &json!("2026-11-10T10:00:00+00:00")), "{moved}");
    assert_eq!(payload["expired"], json!("7"), "what remained, not what is held");
    assert_eq!(remaining(&app, "a", &lot).await, "0");
    assert_eq!(app.balance("a").await, "3", "the held credits are still held");

    let query = "query($a: ID!) { account(id: $a) { history(first: 2) { nodes { kind amount effectiveAt reason actor } } } }";
    let history = app.gql(&app.service, query, json!({ "a": "a" })).await;
    let nodes = &history["data"]["account"]["history"]["nodes"];
    assert_eq!(nodes[0]["kind"], json!("EXPIRE"), "{history}");
    assert_eq!(
        (&nodes[0]["amount"], &nodes[0]["effectiveAt"], &nodes[0]["actor"], &nodes[0]["reason"]),
        (&json!("-7"), &json!("2026-11-10T10:00:00+00:00"), &json!(ADMIN_SUBJECT), &json!("goodwill")),
        "{history}"
    );
    assert_eq!(nodes[1]["kind"], json!("EXPIRY_CHANGE"), "{history}");

    // Released, the held credits return to an expired lot: they expire, not come back.
    release(&app, &reservation).await;
    assert_eq!(app.balance("a").await, "0");
    app.ledger.expire_due(app.clock.now(), 1000).await.unwrap();
    assert_eq!(app.balance("a").await, "0");
    assert_eq!(remaining(&app, "a", &lot).await, "0");
    app.assert_audit_clean().await;
}

/// Refusals change nothing: an empty lot, the day's free credits, an unknown lot, bad input and
/// every role but a named admin.
async fn what_cannot_be_moved_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let empty = lot_id(&app, "a", "2", "g-1", Some(at("2026-11-11T00:00:00Z"))).await;
    assert!(app.spend("a", "2", "s-1").await["errors"].is_null());
    let refused = change_expiry(&app, &app.admin, &empty, "2026-12-01T00:00:00Z", "e-1").await;
    assert_eq!(error_code(&refused), "INVALID_STATE", "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("nothing remains"), "{refused}");

    let lot = lot_id(&app, "a", "5", "g-2", Some(at("2026-11-11T00:00:00Z"))).await;
    assert_eq!(error_code(&change_expiry(&app, &app.admin, "999999", "2026-12-01T00:00:00Z", "e-x").await), "NOT_FOUND");
    assert_eq!(error_code(&change_expiry(&app, &app.admin, "lot-1", "2026-12-01T00:00:00Z", "e-x").await), "NOT_FOUND");
    let blank = app
        .gql(&app.admin, EXPIRY.replace("goodwill", " ").as_str(), json!({ "l": lot, "e": "2026-12-01T00:00:00Z", "k": "e-blank" }))
        .await;
    assert_eq!(error_code(&blank), "BAD_USER_INPUT", "{blank}");
    let unnamed = unnamed_admin_token();
    for token in [&app.service, &app.user("a"), &unnamed] {
        let r = change_expiry(&app, token, &lot, "2026-12-01T00:00:00Z", "e-who").await;
        assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    }
    assert_eq!(expiry_of(&app, "a", &lot).await, json!("2026-11-11T00:00:00+00:00"), "nothing changed");
    assert_eq!(app.balance("a").await, "5");
    app.assert_audit_clean().await;
}

/// Operators moving one lot's expiry at once, each to another instant under their own key:
/// every change applies in turn, each entry says the expiry it found, and the lot ends at the
/// last one recorded.
async fn concurrent_expiry_changes_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let lot = lot_id(&app, "a", "10", "g-1", Some(at("2026-11-11T00:00:00Z"))).await;
    let results = futures::future::join_all((0..6).map(|i| {
        let (app, lot) = (&app, lot.clone());
        async move { change_expiry(app, &app.admin, &lot, &format!("2026-12-0{}T00:00:00Z", i + 1), &format!("e-{i}")).await }
    }))
    .await;
    let mut changes: Vec<&Value> = results.iter().map(|r| &r["data"]["changeLotExpiry"]).collect();
    assert!(results.iter().all(|r| r["errors"].is_null()), "{results:?}");
    changes.sort_by_key(|c| c["sequence"].as_str().unwrap().parse::<i64>().unwrap());
    assert_eq!(changes[0]["previousExpiresAt"], json!("2026-11-11T00:00:00+00:00"));
    for pair in changes.windows(2) {
        assert_eq!(pair[1]["previousExpiresAt"], pair[0]["expiresAt"], "each change saw the one before: {changes:?}");
    }
    assert_eq!(expiry_of(&app, "a", &lot).await, changes[5]["expiresAt"]);
    app.assert_audit_clean().await;
}

on_both!(
    an_expiry_moves_later_and_the_history_says_so,
    an_expiry_moved_into_the_past_expires_the_lot_now,
    what_cannot_be_moved_is_refused_and_changes_nothing,
    concurrent_expiry_changes_chain
);

/// The corrections over the WebSocket: the same operations, the same named-operator rule, and
/// the same keys as over HTTP (a replay over HTTP is the socket's outcome); a balance
/// subscription on the socket sees each move.
async fn corrections_work_over_the_websocket(backend: Backend) {
    use crate::support::ws::{connect, execute, next_payload, subscribe};
    let app = TestApp::spawn(backend).await;
    app.clock.set(at("2026-11-10T10:00:00Z"));
    app.create_account("a").await;
    let voided_lot = lot_id(&app, "a", "4", "g-1", None).await;
    let moved_lot = lot_id(&app, "a", "6", "g-2", None).await;
    assert!(app.grant("a", "10", "PAID", None, "g-3").await["errors"].is_null());

    // One socket watches (its pushes may come at any moment), another sends the corrections.
    let mut watch = connect(&app.address, &app.admin).await;
    let mut socket = connect(&app.address, &app.admin).await;
    subscribe(&mut watch, "balance", "subscription { balanceChanged(accountId: \"a\") { balance { total } } }", json!({})).await;
    let total = |v: &Value| v["data"]["balanceChanged"]["balance"]["total"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    assert_eq!(total(&next_payload(&mut watch, "balance").await), "20");

    let voided = execute(&mut socket, "void", VOID, json!({ "l": voided_lot, "r": "fraud", "k": "ws-v" })).await;
    assert_eq!(voided["data"]["voidLot"]["voided"], json!("4"), "{voided}");
    assert_eq!(total(&next_payload(&mut watch, "balance").await), "16");
    let debited = execute(&mut socket, "adjust", ADJUST, json!({ "a": "a", "amt": "1", "l": null, "k": "ws-d" })).await;
    assert_eq!(debited["data"]["adjustCredits"]["amount"], json!("1"), "{debited}");
    assert_eq!(total(&next_payload(&mut watch, "balance").await), "15");
    let moved = execute(&mut socket, "expiry", EXPIRY, json!({ "l": moved_lot, "e": "2026-11-01T00:00:00Z", "k": "ws-e" })).await;
    // The debit took its credit from this promotional lot (the program's order): 5 remain.
    assert_eq!(moved["data"]["changeLotExpiry"]["expired"], json!("5"), "{moved}");
    assert_eq!(total(&next_payload(&mut watch, "balance").await), "10");

    // One key, whichever transport: the HTTP replay is the socket's outcome.
    let replay = change_expiry(&app, &app.admin, &moved_lot, "2026-11-01T00:00:00Z", "ws-e").await;
    assert_eq!(replay["data"], moved["data"]);
    // A token without an operator's name is refused over the socket too.
    let mut unnamed = connect(&app.address, &unnamed_admin_token()).await;
    let refused = execute(&mut unnamed, "void", VOID, json!({ "l": moved_lot, "r": "x", "k": "ws-x" })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    assert_eq!(app.balance("a").await, "10");
    app.assert_audit_clean().await;
}

on_both!(corrections_work_over_the_websocket);

on_both!(a_manual_debit_takes_from_the_named_lot_or_in_order);

on_both!(a_void_takes_what_remains_once, what_cannot_be_voided_is_refused_and_changes_nothing, concurrent_voids_of_one_lot_void_it_once);
