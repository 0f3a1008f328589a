//! The WebSocket transport (issue 17, item 4): every limit HTTP applies holds over
//! `/graphql/ws` too, and so do the limits only a long-lived connection needs (operations open
//! per connection, subscriptions per account, connections per address, the `connection_init`
//! timeout, the token's expiry). Tried with a real graphql-transport-ws client, and with raw
//! frames where the test must control what reaches the server.

use crate::on_both;
use crate::support::ws::{WAIT, closed, code_of, connect, execute, next, next_payload, open, send, subscribe};
use crate::support::{Backend, LEDGER_PROGRAM, TestApp, TestDb, error_code};
use credits::app::Security;
use credits::balance_watch::BalanceWatches;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BALANCE: &str = "subscription($a: ID) { balanceChanged(accountId: $a) { accountId balance { total } } }";

async fn spawn(backend: Backend, security: Security) -> TestApp {
    TestApp::spawn_secured(TestDb::new(backend).await, backend, LEDGER_PROGRAM, security).await
}

fn total(payload: &Value) -> &str {
    payload["data"]["balanceChanged"]["balance"]["total"].as_str().unwrap_or_else(|| panic!("a balance: {payload}"))
}

/// The first values of `count` subscriptions just started on `socket`, in whatever order they
/// come: each must be `expected`.
async fn balances(socket: &mut crate::support::ws::Socket, count: usize, expected: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for _ in 0..count {
        let message = next(socket).await;
        assert_eq!(message["type"], json!("next"), "{message}");
        assert_eq!(total(&message["payload"]), expected, "{message}");
        ids.insert(message["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), count, "one value per subscription: {ids:?}");
    ids
}

/// A WebSocket opened by hand, so the test decides which bytes the server gets.
async fn raw_upgrade(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET /graphql/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// A client frame's header announcing `length` bytes (masked with a zero key, so the payload
/// goes as it is).
fn frame_header(first_byte: u8, length: u64) -> Vec<u8> {
    let mut header = vec![first_byte];
    match length {
        0..126 => header.push(0x80 | length as u8),
        126..=65535 => {
            header.push(0x80 | 126);
            header.extend((length as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend(length.to_be_bytes());
        }
    }
    header.extend([0u8; 4]);
    header
}

/// The code of the close frame the server sends next.
async fn close_code(stream: &mut TcpStream) -> u16 {
    tokio::time::timeout(WAIT, async {
        let first = stream.read_u8().await.unwrap();
        assert_eq!(first, 0x88, "a close frame");
        let length = stream.read_u8().await.unwrap() & 0x7f;
        let mut payload = vec![0u8; usize::from(length)];
        stream.read_exact(&mut payload).await.unwrap();
        u16::from_be_bytes([payload[0], payload[1]])
    })
    .await
    .expect("the server closes in time")
}

/// A message over `max_body_bytes` is refused from its header and the socket closed with 1009
/// (Message Too Big): the server waits for none of it, so it cannot be made to hold it (before,
/// tungstenite's default let 64 MiB in, and an 8.8 MB subscribe was parsed). Many fragments
/// under the limit each are refused once together they pass it. Closing is the one clean
/// answer: the rest of the message is still on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_body_limit_closes_the_socket_unread() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_account("a").await;
    // 8.8 MB announced, nothing sent behind the header: an answer proves it was not awaited.
    let mut raw = raw_upgrade(&app.address).await;
    raw.write_all(&frame_header(0x81, 8_800_000)).await.unwrap();
    assert_eq!(close_code(&mut raw).await, 1009);

    let mut raw = raw_upgrade(&app.address).await;
    let half = 40 * 1024;
    let mut frames = frame_header(0x01, half as u64);
    frames.extend(vec![b' '; half]);
    frames.extend(frame_header(0x80, half as u64));
    frames.extend(vec![b' '; half]);
    raw.write_all(&frames).await.unwrap();
    assert_eq!(close_code(&mut raw).await, 1009, "fragments add up");

    // Just under the limit is answered, and the server serves on.
    let mut socket = connect(&app.address, &app.user("a")).await;
    let query = format!("# {}\n{{ me {{ balance {{ total }} }} }}", "x".repeat(60 * 1024));
    let answer = execute(&mut socket, "1", &query, json!({})).await;
    assert_eq!(answer["data"]["me"]["balance"]["total"], json!("0"), "{answer}");
    assert_eq!(app.balance("a").await, "0");
}

/// Claims over the WebSocket count against the same per-address budget as claims over HTTP
/// (before, the WebSocket's data had no client address, so its claims were not counted).
async fn the_claim_limit_per_address_counts_both_transports(backend: Backend) {
    let security = Security { claims_per_minute_per_account: 100, claims_per_minute_per_ip: 4, ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, "arkain", security).await;
    for account in ["a", "b", "c"] {
        app.create_account(account).await;
    }
    let redeem =
        "mutation($a: ID!, $k: String!) { redeemCoupon(input: {accountId: $a, code: \"NO-SUCH-CODE\", idempotencyKey: $k}) { amount } }";
    for i in 0..2 {
        let r = app.gql(&app.user("a"), redeem, json!({ "a": "a", "k": format!("h-{i}") })).await;
        assert_eq!(error_code(&r), "COUPON_NOT_FOUND", "{r}");
    }
    let mut socket = connect(&app.address, &app.user("b")).await;
    for i in 0..2 {
        let r = execute(&mut socket, &format!("w{i}"), redeem, json!({ "a": "b", "k": format!("w-{i}") })).await;
        assert_eq!(code_of(&r), "COUPON_NOT_FOUND", "{r}");
    }
    let limited = execute(&mut socket, "w2", redeem, json!({ "a": "b", "k": "w-2" })).await;
    assert_eq!(code_of(&limited), "TOO_MANY_ATTEMPTS", "the fifth claim from the address, over the WebSocket: {limited}");
    let limited = app.gql(&app.user("c"), redeem, json!({ "a": "c", "k": "h-c" })).await;
    assert_eq!(error_code(&limited), "TOO_MANY_ATTEMPTS", "and over HTTP: {limited}");
}

/// Depth, complexity, aliases, fan-out, syntax and unknown fields are refused over the
/// WebSocket with a code, as over HTTP (before, the library's own refusals came without one);
/// queries and mutations are allowed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_limits_answer_with_a_code_over_the_websocket() {
    let security = Security { max_complexity: 50, ..Default::default() };
    let app = spawn(Backend::Sqlite, security).await;
    let mut socket = connect(&app.address, &app.service).await;
    let created = execute(&mut socket, "create", "mutation { createAccount(input: {externalId: \"a\"}) { created } }", json!({})).await;
    assert_eq!(created["data"]["createAccount"]["created"], json!(true), "a mutation over the WebSocket: {created}");

    let deep = format!(
        "{{ __schema {{ types {{ {} name {} }} }} }}",
        "fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType {".repeat(2),
        "}}}}}}}}".repeat(2)
    );
    let complex =
        format!("{{ {} }}", (0..20).map(|i| format!("c{i}: __schema {{ queryType {{ name kind description }} }}")).collect::<String>());
    let aliased = format!("{{ {} }}", (0..31).map(|i| format!("a{i}: __typename ")).collect::<String>());
    let mut fan_out = String::from("{ ...F0 }");
    for level in 0..30 {
        fan_out.push_str(&format!(" fragment F{level} on QueryRoot {{ ...F{next} ...F{next} }}", next = level + 1));
    }
    fan_out.push_str(" fragment F30 on QueryRoot { __typename }");
    let nested = format!("{{ account(id: {}\"a\"{}) {{ id }} }}", "{a: ".repeat(100), "}".repeat(100));
    let cases = [
        ("depth", deep),
        ("complexity", complex),
        ("aliases", aliased),
        ("fan-out", fan_out),
        ("nesting", nested),
        ("syntax", "{ account(".into()),
        ("unknown field", "{ nothingHere }".into()),
    ];
    for (i, (label, query)) in cases.iter().enumerate() {
        let refused = execute(&mut socket, &format!("r{i}"), query, json!({})).await;
        assert_eq!(code_of(&refused), "BAD_USER_INPUT", "{label}: {refused}");
        for error in refused["errors"].as_array().unwrap() {
            assert!(error["extensions"]["code"].is_string(), "{label}: every error has a code: {refused}");
        }
    }
    // A message that is not the protocol's closes the socket (1002), as the library does.
    send(&mut socket, json!({ "type": "nonsense" })).await;
    assert_eq!(closed(&mut socket).await.map(|(code, _)| code), Some(1002));
    assert_eq!(app.balance("a").await, "0", "the server serves on");
}

/// The request timeout holds for a query or mutation sent over the WebSocket.
async fn the_request_timeout_holds_over_the_websocket(backend: Backend) {
    let hurried = Security { request_timeout: std::time::Duration::from_nanos(1), ..Default::default() };
    let app = spawn(backend, hurried).await;
    let mut socket = connect(&app.address, &app.service).await;
    // Another connection holds the accounts table's write lock, so the mutation is certainly
    // still waiting when its timer fires.
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let blocker = credits::db::connect(&app.db.url, 1).await.unwrap();
    let options =
        sea_orm::TransactionOptions { sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate), ..Default::default() };
    let lock = blocker.begin_with_options(options).await.unwrap();
    let statement = match backend {
        Backend::Sqlite => "UPDATE accounts SET balance_micros = balance_micros",
        Backend::Postgres => "LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE",
    };
    lock.execute_unprepared(statement).await.unwrap();
    let r = execute(&mut socket, "slow", "mutation { createAccount(input: {externalId: \"slow\"}) { created } }", json!({})).await;
    assert_eq!(code_of(&r), "TIMEOUT", "{r}");
    lock.rollback().await.unwrap();
    app.assert_audit_clean().await;
}

/// At most 20 operations are open at once on one connection: the 21st is refused with
/// `LIMIT_EXCEEDED` until one completes (before, one connection opened 10,000 subscriptions).
async fn the_21st_open_operation_on_a_connection_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let mut socket = connect(&app.address, &app.user("a")).await;
    for i in 0..20 {
        subscribe(&mut socket, &format!("s{i}"), BALANCE, json!({})).await;
    }
    balances(&mut socket, 20, "0").await;
    subscribe(&mut socket, "s20", BALANCE, json!({})).await;
    let refused = next_payload(&mut socket, "s20").await;
    assert_eq!(code_of(&refused), "LIMIT_EXCEEDED", "{refused}");
    assert_eq!(next(&mut socket).await, json!({ "type": "complete", "id": "s20" }));
    let query = execute(&mut socket, "q", "{ me { balance { total } } }", json!({})).await;
    assert_eq!(code_of(&query), "LIMIT_EXCEEDED", "a query is an open operation too: {query}");

    send(&mut socket, json!({ "type": "complete", "id": "s0" })).await;
    assert_eq!(next(&mut socket).await, json!({ "type": "complete", "id": "s0" }));
    let query = execute(&mut socket, "q", "{ me { balance { total } } }", json!({})).await;
    assert_eq!(query["data"]["me"]["balance"]["total"], json!("0"), "a place was freed: {query}");
    // The 20 still open are live.
    app.grant("a", "3", "PAID", None, "g").await;
    balances(&mut socket, 19, "3").await;
    // Another connection has places of its own.
    let mut other = connect(&app.address, &app.user("a")).await;
    subscribe(&mut other, "s0", BALANCE, json!({})).await;
    assert_eq!(total(&next_payload(&mut other, "s0").await), "3");
}

/// At most `max_subscriptions_per_account` subscriptions watch one account at once, over all
/// connections and tokens; a place comes back when one ends.
async fn subscriptions_per_account_are_capped(backend: Backend) {
    let app = spawn(backend, Security { max_subscriptions_per_account: 3, ..Default::default() }).await;
    app.create_account("a").await;
    app.create_account("b").await;
    let watches = app.schema.data::<BalanceWatches>().expect("the schema carries the watchers");
    let a = app.ledger.account("a").await.unwrap().id;
    let mut first = connect(&app.address, &app.user("a")).await;
    let mut second = connect(&app.address, &app.service).await;
    subscribe(&mut first, "1", BALANCE, json!({})).await;
    subscribe(&mut first, "2", BALANCE, json!({})).await;
    balances(&mut first, 2, "0").await;
    subscribe(&mut second, "3", BALANCE, json!({ "a": "a" })).await;
    balances(&mut second, 1, "0").await;
    assert_eq!(watches.subscribers(a), 3);

    for (socket, id) in [(&mut first, "4"), (&mut second, "5")] {
        subscribe(socket, id, BALANCE, json!({ "a": "a" })).await;
        let refused = next_payload(socket, id).await;
        assert_eq!(code_of(&refused), "LIMIT_EXCEEDED", "{refused}");
        assert_eq!(next(socket).await, json!({ "type": "complete", "id": id }));
    }
    subscribe(&mut second, "b", BALANCE, json!({ "a": "b" })).await;
    balances(&mut second, 1, "0").await;

    send(&mut first, json!({ "type": "complete", "id": "1" })).await;
    assert_eq!(next(&mut first).await, json!({ "type": "complete", "id": "1" }));
    subscribe(&mut second, "6", BALANCE, json!({ "a": "a" })).await;
    balances(&mut second, 1, "0").await;
    assert_eq!(watches.subscribers(a), 3);

    // A closed connection gives its places back (once the server has seen it close).
    drop(first);
    let released = tokio::time::timeout(WAIT, async {
        while watches.subscribers(a) != 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "the closed connection's subscriptions ended: {}", watches.subscribers(a));
}

/// At most `max_websockets_per_address` WebSockets are open at once from one address: the next
/// upgrade is answered 429 with `LIMIT_EXCEEDED`, and a place comes back when one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_per_address_are_capped() {
    let app = spawn(Backend::Sqlite, Security { max_websockets_per_address: 3, ..Default::default() }).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(open(&app.address).await.expect("under the cap"));
    }
    match open(&app.address).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body}");
        }
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("a fourth WebSocket from one address was accepted"),
    }
    // HTTP from the same address is not affected.
    let plans = app.gql(&app.service, "{ plans { code } }", json!({})).await;
    assert!(plans["errors"].is_null(), "{plans}");
    let mut closing = sockets.pop().unwrap();
    closing.close(None).await.unwrap();
    let reopened = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(socket) = open(&app.address).await {
                return socket;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed WebSocket gives its place back");
}

/// A socket that sends no `connection_init` is closed with 4408 once the timeout passes (before,
/// it stayed open for ever); one that did is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_connection_init_is_closed_with_4408() {
    let security = Security { websocket_init_timeout: std::time::Duration::from_secs(1), ..Default::default() };
    let app = spawn(Backend::Sqlite, security).await;
    let mut initialised = connect(&app.address, &app.service).await;
    let mut idle = open(&app.address).await.unwrap();
    assert_eq!(closed(&mut idle).await, Some((4408, "Connection initialisation timeout".to_string())));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let plans = execute(&mut initialised, "p", "{ plans { code } }", json!({})).await;
    assert!(plans["errors"].is_null(), "past the init timeout, the initialised socket serves: {plans}");
}

/// A subscription ends when its token expires, with `UNAUTHENTICATED`, then `complete`; nothing
/// else is started on that connection after (before, it kept pushing with an expired token).
async fn a_subscription_ends_when_its_token_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let token = app.keys.issue(credits::auth::Role::User, Some("a"), std::time::Duration::from_secs(2)).unwrap();
    let (_, expires_at) = app.keys.authenticate_until(Some(&format!("Bearer {token}"))).unwrap();
    let mut socket = connect(&app.address, &token).await;
    subscribe(&mut socket, "s", BALANCE, json!({})).await;
    assert_eq!(total(&next_payload(&mut socket, "s").await), "0");
    let ended = next_payload(&mut socket, "s").await;
    assert_eq!(code_of(&ended), "UNAUTHENTICATED", "{ended}");
    assert!(chrono::Utc::now().timestamp_millis() >= expires_at * 1000, "not before the token expired");
    assert_eq!(next(&mut socket).await, json!({ "type": "complete", "id": "s" }));
    let query = execute(&mut socket, "q", "{ me { balance { total } } }", json!({})).await;
    assert_eq!(code_of(&query), "UNAUTHENTICATED", "{query}");
    // The connection is still there for a client to read the refusal; a grant reaches nobody.
    app.grant("a", "1", "PAID", None, "g").await;
    let query = execute(&mut socket, "q2", "{ __typename }", json!({})).await;
    assert_eq!(code_of(&query), "UNAUTHENTICATED", "{query}");
}

/// Ten subscribers of one account, on two connections and two tokens: one balance read per
/// change for all of them (before: one per subscriber). Counted by the watchers themselves.
async fn one_balance_read_per_change_is_shared(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("a").await;
    let watches = app.schema.data::<BalanceWatches>().expect("the schema carries the watchers");
    let a = app.ledger.account("a").await.unwrap().id;
    let mut user = connect(&app.address, &app.user("a")).await;
    let mut service = connect(&app.address, &app.service).await;
    for i in 0..5 {
        subscribe(&mut user, &format!("u{i}"), BALANCE, json!({})).await;
        subscribe(&mut service, &format!("s{i}"), BALANCE, json!({ "a": "a" })).await;
    }
    balances(&mut user, 5, "0").await;
    balances(&mut service, 5, "0").await;
    assert_eq!(watches.subscribers(a), 10);
    let joined = watches.reads();
    assert!((1..=10).contains(&joined), "each first value is read after its join, joins arriving together share a read: {joined}");
    for (round, amount, total) in [(1, "5", "5"), (2, "7", "12"), (3, "0.5", "12.5")] {
        let before = watches.reads();
        app.grant("a", amount, "PAID", None, &format!("g{round}")).await;
        balances(&mut user, 5, total).await;
        balances(&mut service, 5, total).await;
        assert_eq!(watches.reads() - before, 1, "round {round}: one read for ten subscribers");
    }
    drop((user, service));
    let ended = tokio::time::timeout(WAIT, async {
        while watches.subscribers(a) != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "the watcher is let go with its last subscriber");
}

/// The example program with gifts between users on (`[gifts]`: 500 credits and 5 gifts per
/// sender and day, 300 per gift).
const GIFTS_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");
const SET_AUTO_TOP_UP: &str = "mutation($input: SetAutoTopUpInput!) { setAutoTopUp(input: $input) {
    enabled threshold amount targetBalance monthlyCap boughtThisMonth failuresInARow maxFailures disabledAt pendingPurchase { credits status } } }";
const SET_SPEND_LIMITS: &str = "mutation($i: SetSpendLimitsInput!) {
    setSpendLimits(input: $i) { maxPerCharge limits { feature period max used remaining resetsAt exceeded } } }";
const SPEND_FOR: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { amount availableAfter } }";
const GIFT: &str = "mutation($f: ID, $t: ID!, $a: CreditAmount!, $k: String!) {
    giftCredits(input: {fromAccount: $f, toAccount: $t, amount: $a, idempotencyKey: $k}) {
      fromAccount toAccount amount sentSequence receivedSequence balanceAfter effectiveAt lots { lotId fromLotId amount expiresAt } } }";

/// The same operation for account `h` over HTTP and for account `w` over the socket (two
/// accounts in the same state): both responses.
async fn on_each(
    app: &TestApp,
    token: &str,
    socket: &mut crate::support::ws::Socket,
    id: &str,
    query: &str,
    variables: impl Fn(&str) -> Value,
) -> (Value, Value) {
    let http = app.gql(token, query, variables("h")).await;
    let ws = execute(socket, id, query, variables("w")).await;
    (http, ws)
}

/// A gift's payload without what names its accounts, entries or lots, which differ between two
/// accounts in the same state.
fn gift_shape(r: &Value) -> Value {
    let g = &r["data"]["giftCredits"];
    let lots: Vec<Value> =
        g["lots"].as_array().unwrap_or_else(|| panic!("{r}")).iter().map(|l| json!([l["amount"], l["expiresAt"]])).collect();
    json!({ "amount": g["amount"], "balanceAfter": g["balanceAfter"], "effectiveAt": g["effectiveAt"], "lots": lots })
}

/// Issue 26's mutations run over `/graphql/ws` as over HTTP: `setAutoTopUp`, `setSpendLimits`
/// (and the `SPEND_LIMIT_REACHED` a spend then meets) and `giftCredits` give the same payloads
/// and the same errors with the same extensions on both transports, for two accounts in the
/// same state; a gift's key replays over either transport with the first answer, and the same
/// key with another amount is `IDEMPOTENCY_CONFLICT` on both.
async fn issue_26_mutations_answer_alike_over_both_transports(backend: Backend) {
    let app = TestApp::spawn_with(backend, GIFTS_PROGRAM).await;
    app.clock.set("2026-12-03T10:00:00Z".parse().unwrap());
    let expires = Some("2027-02-01T00:00:00Z".parse().unwrap());
    for name in ["h", "w", "to"] {
        app.create_account(name).await;
        assert!(app.grant(name, "400", "PAID", expires, &format!("fund-{name}")).await["errors"].is_null());
    }
    let mut socket = connect(&app.address, &app.service).await;
    let service = app.service.clone();

    // setAutoTopUp: set, then refused alike.
    let auto = |threshold: &'static str| move |a: &str| json!({ "input": { "accountId": a, "enabled": true, "threshold": threshold, "amount": "100", "monthlyCap": "500" } });
    let (http, ws) = on_each(&app, &service, &mut socket, "auto", SET_AUTO_TOP_UP, auto("50")).await;
    assert!(http["errors"].is_null(), "{http}");
    assert_eq!(ws, http);
    assert_eq!(ws["data"]["setAutoTopUp"]["threshold"], json!("50"), "{ws}");
    let (http, ws) = on_each(&app, &service, &mut socket, "auto-bad", SET_AUTO_TOP_UP, auto("-1")).await;
    assert_eq!(code_of(&ws), "BAD_USER_INPUT", "{ws}");
    assert_eq!(ws["errors"], http["errors"]);
    // A user may not set another account's (the same refusal over its own socket).
    let mut user_socket = connect(&app.address, &app.user("w")).await;
    let input = auto("50")("h");
    let http = app.gql(&app.user("w"), SET_AUTO_TOP_UP, input.clone()).await;
    let ws = execute(&mut user_socket, "auto-other", SET_AUTO_TOP_UP, input).await;
    assert_eq!(code_of(&ws), "FORBIDDEN", "{ws}");
    assert_eq!(ws["errors"], http["errors"]);

    // setSpendLimits, and the refusals a spend then meets, extensions and all.
    let limits =
        |a: &str| json!({ "i": { "accountId": a, "limits": [{ "feature": "chat", "period": "DAY", "max": "30" }], "maxPerCharge": "20" } });
    let (http, ws) = on_each(&app, &service, &mut socket, "limits", SET_SPEND_LIMITS, limits).await;
    assert!(http["errors"].is_null(), "{http}");
    assert_eq!(ws, http);
    let twice = |a: &str| json!({ "i": { "accountId": a, "limits": [{ "feature": "chat", "period": "DAY", "max": "1" }, { "feature": "chat", "period": "DAY", "max": "2" }] } });
    let (http, ws) = on_each(&app, &service, &mut socket, "limits-bad", SET_SPEND_LIMITS, twice).await;
    assert_eq!(code_of(&ws), "BAD_USER_INPUT", "{ws}");
    assert_eq!(ws["errors"], http["errors"]);
    let spend = |amount: &'static str, key: &'static str| move |a: &str| json!({ "a": a, "amt": amount, "k": key });
    let (http, ws) = on_each(&app, &service, &mut socket, "s-1", SPEND_FOR, spend("25", "s-1")).await;
    assert_eq!(code_of(&ws), "SPEND_LIMIT_REACHED", "{ws}");
    assert_eq!(ws["errors"][0]["extensions"]["period"], json!("CHARGE"), "{ws}");
    assert_eq!(ws["errors"], http["errors"]);
    let (http, ws) = on_each(&app, &service, &mut socket, "s-2", SPEND_FOR, spend("15", "s-2")).await;
    assert!(ws["errors"].is_null(), "{ws}");
    assert_eq!(ws, http);
    let (http, ws) = on_each(&app, &service, &mut socket, "s-3", SPEND_FOR, spend("16", "s-3")).await;
    assert_eq!(code_of(&ws), "SPEND_LIMIT_REACHED", "{ws}");
    assert_eq!((&ws["errors"][0]["extensions"]["period"], &ws["errors"][0]["extensions"]["used"]), (&json!("DAY"), &json!("15")), "{ws}");
    assert_eq!(ws["errors"], http["errors"]);
    // The refusal is kept under its key: a replay over the other transport answers alike.
    assert_eq!(app.gql(&service, SPEND_FOR, spend("16", "s-3")("w")).await["errors"], ws["errors"]);

    // giftCredits: the same gift from each, then replays of its key over both transports.
    let gift = |amount: &'static str, key: &'static str| move |a: &str| json!({ "f": a, "t": "to", "a": amount, "k": key });
    let (http, ws) = on_each(&app, &service, &mut socket, "g-1", GIFT, gift("30", "g-1")).await;
    assert!(http["errors"].is_null() && ws["errors"].is_null(), "{http}\n{ws}");
    assert_eq!(gift_shape(&ws), gift_shape(&http));
    assert_eq!(ws["data"]["giftCredits"]["balanceAfter"], json!("355"), "{ws}");
    let replay = execute(&mut socket, "g-1-again", GIFT, gift("30", "g-1")("w")).await;
    assert_eq!(replay, ws, "a replay over the socket");
    assert_eq!(app.gql(&service, GIFT, gift("30", "g-1")("w")).await, ws, "a replay over HTTP of a gift made over the socket");
    assert_eq!(
        execute(&mut socket, "g-1-http", GIFT, gift("30", "g-1")("h")).await,
        http,
        "a replay over the socket of one made over HTTP"
    );
    assert_eq!(app.balance("w").await, "355", "replays move nothing");
    let (http, ws) = on_each(&app, &service, &mut socket, "g-1-other", GIFT, gift("31", "g-1")).await;
    assert_eq!(code_of(&ws), "IDEMPOTENCY_CONFLICT", "{ws}");
    assert_eq!(code_of(&http), "IDEMPOTENCY_CONFLICT", "{http}");
    // Refusals: over the per-gift maximum, more than the giftable credits, the day's limit.
    for (id, amount, key, code) in [
        ("g-2", "301", "g-2", "BAD_USER_INPUT"),
        ("g-3", "300", "g-3", ""),
        ("g-4", "100", "g-4", "INSUFFICIENT_CREDITS"),
        ("g-5", "171", "g-5", "DAILY_LIMIT_REACHED"),
    ] {
        let (http, ws) = on_each(&app, &service, &mut socket, id, GIFT, gift(amount, key)).await;
        if code.is_empty() {
            assert!(ws["errors"].is_null(), "{ws}");
            assert_eq!(gift_shape(&ws), gift_shape(&http));
        } else {
            assert_eq!(code_of(&ws), code, "{ws}");
            assert_eq!(ws["errors"], http["errors"], "{id}");
        }
    }
    let to = app.balance("to").await;
    assert_eq!(to, "1060", "400 and two gifts of 30 and 300 from each");
    app.assert_audit_clean().await;
}

on_both!(
    issue_26_mutations_answer_alike_over_both_transports,
    the_claim_limit_per_address_counts_both_transports,
    the_request_timeout_holds_over_the_websocket,
    the_21st_open_operation_on_a_connection_is_refused,
    subscriptions_per_account_are_capped,
    a_subscription_ends_when_its_token_expires,
    one_balance_read_per_change_is_shared
);
