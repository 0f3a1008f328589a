//! Running it in production (issue 24): `/metrics` in the Prometheus text format moves with real
//! traffic; `/livez` and `/readyz`; logs as JSON or plain text.

use crate::on_both;
use crate::support::{Backend, TestApp, TestDb, error_code};
use serde_json::json;

const TOKEN: &str = "metrics-token-metrics-token-metrics-token";

/// The value of the series `name{labels}` (labels exactly as rendered), or 0 if absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The sum of every integer counter whose name and first labels are `prefix`, exactly: other
/// tests of this process grant up to the balance limit, so a series can pass 2^53, where a
/// float no longer sees a difference of a few credits in micros.
fn sum(text: &str, prefix: &str) -> u128 {
    text.lines().filter(|line| line.starts_with(prefix)).map(|line| line.rsplit(' ').next().unwrap().parse::<u128>().unwrap()).sum()
}

async fn scrape(app: &TestApp) -> String {
    let url = format!("{}/metrics", app.metrics_address.as_deref().expect("a metrics listener"));
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

async fn metrics_move_with_traffic(backend: Backend) {
    let security =
        credits::app::Security { metrics_bind: Some("127.0.0.1:0".into()), metrics_token: Some(TOKEN.into()), ..Default::default() };
    let app = TestApp::spawn_secured(TestDb::new(backend).await, backend, "arkain", security).await;
    app.create_account("alice").await;
    let before = scrape(&app).await;
    let ok = r#"credits_graphql_requests_total{field="spendCredits",code="OK"}"#;
    let refused = r#"credits_graphql_requests_total{field="spendCredits",code="INSUFFICIENT_CREDITS"}"#;
    let invalid = r#"credits_graphql_requests_total{field="(request)",code="BAD_USER_INPUT"}"#;

    assert!(app.grant("alice", "5", "PAID", None, "g-1").await["errors"].is_null());
    assert!(app.spend("alice", "1", "m-1").await["errors"].is_null());
    assert!(app.spend("alice", "1", "m-2").await["errors"].is_null());
    assert_eq!(error_code(&app.spend("alice", "1000000", "m-3").await), "INSUFFICIENT_CREDITS");
    assert_eq!(error_code(&app.gql(&app.service, "{ not valid", json!({})).await), "BAD_USER_INPUT");
    // A client's operation name never becomes a label.
    app.gql(&app.service, "query SomethingUnique123 { program { name } }", json!({})).await;
    app.ledger.run_job(credits::service::jobs::Job::ExpireLots, app.clock.now()).await.unwrap();

    let after = scrape(&app).await;
    // Other tests in this process count too: each counter grew by at least what this one did.
    assert!(value(&after, ok) - value(&before, ok) >= 2.0, "{after}");
    assert!(value(&after, refused) - value(&before, refused) >= 1.0, "{after}");
    assert!(value(&after, invalid) - value(&before, invalid) >= 1.0, "{after}");
    assert!(!after.contains("SomethingUnique123"), "operation names are not labels");
    assert!(after.contains(r#"credits_graphql_request_duration_seconds_bucket{field="spendCredits",le="0.005"}"#), "{after}");
    assert!(value(&after, r#"credits_job_runs_total{job="ExpireLots",outcome="ok"}"#) >= 1.0, "{after}");
    assert!(after.contains(r#"credits_job_last_success_timestamp_seconds{job="ExpireLots"}"#), "{after}");
    assert!(after.contains("# HELP credits_outbox_backlog "), "{after}");
    assert!(after.contains("credits_outbox_oldest_undelivered_age_seconds "), "{after}");
    assert!(
        value(&after, r#"credits_db_pool_connections{state="idle"}"#) + value(&after, r#"credits_db_pool_connections{state="in_use"}"#)
            >= 1.0,
        "{after}"
    );
    assert!(value(&after, "credits_db_pool_max_connections") >= 1.0, "{after}");
    assert!(value(&after, "credits_spend_batch_size_count") - value(&before, "credits_spend_batch_size_count") >= 2.0, "{after}");
    // Credits moved, in micros, by kind, class and source: the grant and the two spends.
    let grants = r#"credits_moved_micros_total{kind="grant",class="paid",source="#;
    assert!(sum(&after, grants) - sum(&before, grants) >= 5_000_000, "{after}");
    let spends = r#"credits_moved_micros_total{kind="spend","#;
    assert!(sum(&after, spends) - sum(&before, spends) >= 2_000_000, "{after}");
    let begins = r#"credits_transaction_wait_seconds_count{stage="begin"}"#;
    assert!(value(&after, begins) - value(&before, begins) >= 3.0, "{after}");
    assert!(after.contains("\ncredits_spends_waiting ") && value(&after, "credits_spend_lanes") >= 1.0, "{after}");

    // On the main listener, only with the token.
    let main = format!("{}/metrics", app.address);
    assert_eq!(app.client.get(&main).send().await.unwrap().status(), 401);
    assert_eq!(app.client.get(&main).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let with_token = app.client.get(&main).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    assert!(with_token.text().await.unwrap().contains("credits_graphql_requests_total"));
}

async fn without_a_token_metrics_stay_off_the_main_listener(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.metrics_address, None, "no listener unless asked");
    assert_eq!(app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().status(), 404);
}

async fn live_and_ready(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    let live = get("/livez").await.unwrap();
    assert_eq!(live.status(), 200);
    // A database without this binary's last migration is not ready: the server was started
    // against a database nobody migrated yet.
    use sea_orm::ConnectionTrait;
    let db = &app.ledger.db;
    let last = "m20261203_000017_add_operator_records";
    db.execute_unprepared(&format!("DELETE FROM seaql_migrations WHERE version = '{last}'")).await.unwrap();
    let pending = get("/readyz").await.unwrap();
    assert_eq!(pending.status(), 503);
    assert_eq!(pending.json::<serde_json::Value>().await.unwrap()["status"], json!("migrations pending"));
    assert_eq!(get("/livez").await.unwrap().status(), 200, "alive all the same");
    db.execute_unprepared(&format!("INSERT INTO seaql_migrations (version, applied_at) VALUES ('{last}', 0)")).await.unwrap();
    for path in ["/readyz", "/health"] {
        let ready = get(path).await.unwrap();
        assert_eq!(ready.status(), 200, "{path}");
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["status"], json!("ok"), "{path}: {body}");
        assert!(body["jobs"]["behind"].is_array(), "{body}");
    }
}

/// The pool gauges count every connection the process holds: on a SQLite file its write
/// connection is a pool of its own (`db::writer`), on PostgreSQL writes share the pool.
async fn pool_gauges_count_the_write_connection(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pool_max = match backend {
        Backend::Postgres => app.ledger.db.get_postgres_connection_pool().options().get_max_connections(),
        Backend::Sqlite => app.ledger.db.get_sqlite_connection_pool().options().get_max_connections(),
    };
    app.create_account("pia").await;
    assert!(app.grant("pia", "5", "PAID", None, "g-1").await["errors"].is_null());
    let counts = credits::telemetry::pool_counts(&app.ledger);
    match backend {
        Backend::Postgres => assert_eq!(counts.max, pool_max, "{counts:?}"),
        Backend::Sqlite => {
            assert_eq!(counts.max, pool_max + 1, "{counts:?}");
            // The grant wrote on the writer, which stays open.
            assert_eq!(app.ledger.writer.get_sqlite_connection_pool().size(), 1);
        }
    }
    // A pool connection at least, and the writer on SQLite.
    let opened = if backend == Backend::Sqlite { 2 } else { 1 };
    assert!(counts.in_use + counts.idle >= opened, "{counts:?}");
}

on_both!(
    metrics_move_with_traffic,
    without_a_token_metrics_stay_off_the_main_listener,
    live_and_ready,
    pool_gauges_count_the_write_connection
);

/// `log_format = "json"`: one JSON object per line on stderr; text has no colour codes when
/// stderr is not a terminal; anything else is refused.
#[test]
fn logs_are_json_or_plain_text() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    for format in ["json", "text"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_credits"))
            .args(["serve", "--bind", "127.0.0.1:0", "--no-workers"])
            .env_remove("DATABASE_URL")
            .env_remove("CREDITS_CONFIG")
            .env("CREDITS_DATA_DIR", dir.path())
            .env("CREDITS_METRICS_BIND", "off")
            .env("CREDITS_LOG_FORMAT", format)
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let listening = line.contains("listening");
            seen.push(line);
            if listening {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.iter().any(|l| l.contains("listening")), "{seen:?}");
        for line in &seen {
            assert!(!line.contains('\u{1b}'), "no colour codes off a terminal: {line:?}");
            if format == "json" {
                let object: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(object["level"].is_string() && object["fields"].is_object() && object["timestamp"].is_string(), "{object}");
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(["migrate"])
        .env("CREDITS_DATA_DIR", dir.path())
        .env("CREDITS_LOG_FORMAT", "xml")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("log_format"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// Secrets and tokens never reach the logs: a server run at debug level is sent every kind of
/// credential (tokens of each role, a bad one, a console link's code and the session it opens, a
/// portal session, a WebSocket's `connection_init`, a signed ad callback, the metrics token),
/// and its whole log is searched for each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_is_ever_logged() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("CREDITS_AUTH_SECRET", "auth-secret-0123456789-auth-secret-0123456789"),
        ("CREDITS_WEBHOOK_SECRET", "webhook-secret-0123456789-webhook-secret-0123"),
        ("CREDITS_AD_SECRET", "ad-secret-0123456789-ad-secret-0123456789-ad"),
        ("CREDITS_METRICS_TOKEN", "metrics-token-0123456789-metrics-token-012345"),
    ];
    // The binary with this run's secrets; the server's log goes to a file (a pipe nobody reads
    // would block it once full), and its wait for readiness is bounded and fails with that log.
    let credits = || {
        let mut command = crate::support::serve::credits_command();
        command
            .env_remove("DATABASE_URL")
            .env("CREDITS_DATA_DIR", dir.path())
            .env("CREDITS_METRICS_BIND", "off")
            .env("CREDITS_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
            .env("RUST_LOG", "debug,sqlx=debug,hyper=info,h2=info,reqwest=info,tower=info,rustls=info")
            .current_dir(dir.path());
        for (name, value) in secrets {
            command.env(name, value);
        }
        command
    };
    let mut server = crate::support::serve::ServeProcess::start(credits(), &[], dir.path(), "serve").await;
    let address = server.address.clone();
    let port = address.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::new();
    let token = |args: &'static [&'static str]| {
        let mut command = tokio::process::Command::from(credits());
        command.args(args);
        async move { String::from_utf8(command.output().await.unwrap().stdout).unwrap().trim().to_string() }
    };
    let service = token(&["token", "--role", "service"]).await;
    let admin = token(&["token", "--role", "admin", "--subject", "ops"]).await;
    let user = token(&["token", "--role", "user", "--account", "alice"]).await;
    let link = token(&["console-link", "--subject", "ops"]).await;
    let code = link.split("#code=").nth(1).expect("a console link").to_string();
    let gql =
        |token: &str, query: &str| client.post(format!("{address}/graphql")).bearer_auth(token).json(&json!({ "query": query })).send();
    gql(&service, r#"mutation { createAccount(input: {externalId: "alice"}) { created } }"#).await.unwrap();
    gql(&user, "{ me { balance { total } } }").await.unwrap();
    gql(&admin, r#"mutation { grantCredits(input: {accountId: "alice", amount: "5", class: PAID, idempotencyKey: "g"}) { lotId } }"#)
        .await
        .unwrap();
    gql("not-a-real-token-but-secret-looking-0123456789", "{ me { id } }").await.unwrap();
    let session: serde_json::Value = client
        .post(format!("{address}/graphql"))
        .json(&json!({ "query": format!("mutation {{ openConsoleSession(code: \"{code}\") {{ token }} }}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let console = session["data"]["openConsoleSession"]["token"].as_str().unwrap_or_else(|| panic!("{session}")).to_string();
    gql(&console, "{ viewer { subject } }").await.unwrap();
    let portal: serde_json::Value =
        gql(&service, r#"mutation { createPortalSession(accountId: "alice") { token } }"#).await.unwrap().json().await.unwrap();
    let portal = portal["data"]["createPortalSession"]["token"].as_str().unwrap_or_else(|| panic!("{portal}")).to_string();
    client.get(format!("{address}/metrics")).bearer_auth(secrets[3].1).send().await.unwrap();
    client.get(format!("{address}/callbacks/ads?user_id=alice&transaction_id=t1&signature=00")).send().await.unwrap();
    {
        use futures::{SinkExt, StreamExt};
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!("ws://127.0.0.1:{port}/graphql/ws"))
                .unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {user}") } });
        socket.send(tokio_tungstenite::tungstenite::Message::Text(init.to_string().into())).await.unwrap();
        let _ack = socket.next().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.assert_alive();
    server.kill();
    let log = server.log();
    assert!(log.contains("console session opened") && log.contains("request"), "the log is the server's: {log}");
    let tokens = [&service, &admin, &user, &console, &portal];
    for (name, value) in secrets
        .iter()
        .map(|(n, v)| (*n, *v))
        .chain(tokens.iter().map(|t| ("a token", t.as_str())))
        .chain([("the console code", code.as_str()), ("a bad token", "not-a-real-token-but-secret-looking")])
    {
        assert!(!value.is_empty());
        // A JWT's signature is its secret part; its header is the same for every token.
        let needle = value.rsplit('.').next().unwrap();
        assert!(!log.contains(needle), "{name} is in the log");
    }
    assert!(!log.contains("Bearer "), "an Authorization header is in the log");
}

/// The binary with a fresh SQLite data dir and nothing of the caller's telemetry settings; the
/// caller adds where traces go (or not).
fn traced_credits(dir: &std::path::Path) -> std::process::Command {
    let mut command = crate::support::serve::credits_command();
    command
        .env_remove("DATABASE_URL")
        .env_remove("CREDITS_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("RUST_LOG")
        .env("CREDITS_DATA_DIR", dir)
        .env("CREDITS_METRICS_BIND", "off")
        .current_dir(dir);
    command
}

async fn output_of(mut command: std::process::Command, args: &[&str]) -> String {
    command.args(args);
    let output = tokio::process::Command::from(command).output().await.unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Traces over OTLP/HTTP (issue 24): the real binary, pointed at a receiver this test starts,
/// sends the spans of a request that moves credits (the request's, with the id its response
/// carried; the resolver's; the transaction's, in the same trace), then, run as `jobs --run`,
/// a span per job run. The last spans arrive because a graceful stop flushes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_http_receiver() {
    use crate::support::otlp::{OtlpReceiver, descends_from};
    let receiver = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let credits = || {
        let mut command = traced_credits(dir.path());
        command.env("CREDITS_OTLP_ENDPOINT", &receiver.endpoint);
        command
    };
    let server = crate::support::serve::ServeProcess::start(credits(), &["--no-workers"], dir.path(), "serve").await;
    let service = output_of(credits(), &["token", "--role", "service"]).await;
    let admin = output_of(credits(), &["token", "--role", "admin", "--subject", "ops"]).await;
    let client = reqwest::Client::new();
    let graphql =
        |token: &str, body: serde_json::Value| client.post(format!("{}/graphql", server.address)).bearer_auth(token).json(&body).send();
    let created =
        graphql(&service, json!({ "query": r#"mutation { createAccount(input: {externalId: "alice"}) { created } }"# })).await.unwrap();
    assert_eq!(created.status(), 200);
    // A distinctive operation name and variable: neither may become a span's name or attribute.
    let grant = graphql(
        &admin,
        json!({
            "query": "mutation GrantOperationName4711($key: String!) { grantCredits(input: {accountId: \"alice\", amount: \"5\", \
                      class: PAID, idempotencyKey: $key}) { lotId } }",
            "operationName": "GrantOperationName4711",
            "variables": { "key": "variable-value-0815" },
        }),
    )
    .await
    .unwrap();
    let request_id = grant.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = grant.json().await.unwrap();
    assert!(body["errors"].is_null() && body["data"]["grantCredits"]["lotId"].is_string(), "{body}");
    // A spend is committed by a lane's runner, a task of its own (group commit): its span is
    // carried there, so the spend's transaction is in its request's trace too.
    let spend = graphql(
        &service,
        json!({ "query": r#"mutation { spendCredits(input: {accountId: "alice", amount: "2", idempotencyKey: "s-1", feature: "chat"}) { sequence } }"# }),
    )
    .await
    .unwrap();
    let spend_request_id = spend.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = spend.json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");
    let log = server.log();
    server.stop_gracefully(std::time::Duration::from_secs(30)).await;
    assert!(log.contains("traces: exporting spans over OTLP/HTTP"), "{log}");
    output_of(credits(), &["jobs", "--run"]).await;

    let spans = receiver.spans();
    let names: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(receiver.requests().iter().all(|r| r == "POST /v1/traces application/x-protobuf"), "{:?}", receiver.requests());
    assert!(spans.iter().all(|s| s.service == "credits"), "service.name: {spans:#?}");
    // Span names from a closed set: nothing a client chose.
    for name in &names {
        assert!(
            ["http.request", "graphql.field", "db.transaction", "job.run", "spend.batch"].contains(name),
            "unexpected span {name:?}: {names:?}"
        );
    }
    let request = spans
        .iter()
        .find(|s| s.name == "http.request" && s.attribute("request_id") == Some(request_id.as_str()))
        .unwrap_or_else(|| panic!("no http.request span with request_id {request_id}: {spans:#?}"));
    assert_eq!(request.attribute("http.request.method"), Some("POST"), "{request:#?}");
    assert_eq!(request.attribute("http.route"), Some("/graphql"), "{request:#?}");
    assert_eq!(request.attribute("http.response.status_code"), Some("200"), "{request:#?}");
    assert!(request.parent_span_id.is_empty(), "the request's span is its trace's root: {request:#?}");
    let field = spans
        .iter()
        .find(|s| s.name == "graphql.field" && s.attribute("graphql.field.name") == Some("grantCredits"))
        .unwrap_or_else(|| panic!("no graphql.field span for grantCredits: {spans:#?}"));
    assert!(descends_from(&spans, field, request), "the resolver's span is in the request's trace: {field:#?} {request:#?}");
    assert_eq!(field.attribute("graphql.operation.type"), Some("mutation"));
    assert_eq!(field.attribute("graphql.outcome"), Some("OK"));
    let transaction = spans
        .iter()
        .find(|s| s.name == "db.transaction" && descends_from(&spans, s, field))
        .unwrap_or_else(|| panic!("no db.transaction span under the grant's resolver: {spans:#?}"));
    assert!(descends_from(&spans, transaction, request));
    assert_eq!(transaction.attribute("db.system"), Some("sqlite"), "{transaction:#?}");
    assert_eq!(transaction.attribute("db.transaction.outcome"), Some("committed"), "{transaction:#?}");
    assert!(transaction.attribute("db.transaction.attempts").is_some_and(|n| n.parse::<u32>().unwrap() >= 1), "{transaction:#?}");
    let spend_request = spans
        .iter()
        .find(|s| s.name == "http.request" && s.attribute("request_id") == Some(spend_request_id.as_str()))
        .unwrap_or_else(|| panic!("no http.request span for the spend: {spans:#?}"));
    let batch = spans
        .iter()
        .find(|s| s.name == "spend.batch" && descends_from(&spans, s, spend_request))
        .unwrap_or_else(|| panic!("no spend.batch span in the spend's trace: {spans:#?}"));
    assert_eq!(batch.attribute("spend.batch.size"), Some("1"), "{batch:#?}");
    assert!(
        spans.iter().any(|s| s.name == "db.transaction" && descends_from(&spans, s, batch)),
        "the spend's transaction is under its batch: {spans:#?}"
    );
    // `jobs --run` runs every job once: each run is a span with its name and outcome.
    let job = spans
        .iter()
        .find(|s| s.name == "job.run" && s.attribute("job.name") == Some("ExpireLots"))
        .unwrap_or_else(|| panic!("no job.run span for ExpireLots: {names:?}"));
    assert_eq!(job.attribute("job.outcome"), Some("ok"), "{job:#?}");
    assert!(job.attribute("job.items").is_some(), "{job:#?}");
    // No token, variable or operation name anywhere in what was sent, events included.
    let everything = format!("{spans:?}");
    for needle in [service.rsplit('.').next().unwrap(), admin.rsplit('.').next().unwrap(), "variable-value-0815", "GrantOperationName4711"]
    {
        assert!(!everything.contains(needle), "{needle:?} was sent in a span");
    }
}

/// With no endpoint configured no exporter is built, and nothing is sent: even with the
/// variable the OpenTelemetry exporter reads by itself when given no endpoint pointing at a
/// live receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_no_span_is_sent() {
    let receiver = crate::support::otlp::OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = traced_credits(dir.path());
    command
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{}/v1/traces", receiver.endpoint))
        .env("RUST_LOG", "info,sqlx=warn,credits=debug");
    let server = crate::support::serve::ServeProcess::start(command, &["--no-workers"], dir.path(), "serve").await;
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": "{ program { name } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let log = server.log();
    server.stop_gracefully(std::time::Duration::from_secs(30)).await;
    assert!(log.contains("traces: off"), "{log}");
    assert!(!log.contains("traces: exporting"), "{log}");
    assert_eq!(receiver.requests(), Vec::<String>::new());
}

/// `config check` shows where traces go (the standard variable counts, ours wins over it) and
/// reports a malformed endpoint as a problem.
#[test]
fn config_check_shows_and_checks_the_otlp_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let check = |vars: &[(&str, &str)]| {
        let mut command = traced_credits(dir.path());
        command.args(["config", "check"]);
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (ok, stdout, _) = check(&[]);
    assert!(ok && !stdout.contains("otlp_endpoint"), "off by default: {stdout}");
    let (ok, stdout, stderr) = check(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.internal:4318")]);
    assert!(ok && stdout.contains(r#"otlp_endpoint = "http://collector.internal:4318""#), "{stdout}{stderr}");
    let (ok, stdout, stderr) =
        check(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.internal:4318"), ("CREDITS_OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
    assert!(ok && stdout.contains(r#"otlp_endpoint = "http://127.0.0.1:4318""#), "{stdout}{stderr}");
    let (ok, stdout, _) = check(&[("CREDITS_OTLP_ENDPOINT", "https://user:hunter2@collector.internal")]);
    assert!(ok && stdout.contains("otlp_endpoint") && !stdout.contains("hunter2"), "a password in the URL is masked: {stdout}");
    let (ok, _, stderr) = check(&[("CREDITS_OTLP_ENDPOINT", "collector:4317")]);
    assert!(!ok && stderr.contains("problem:") && stderr.contains("otlp_endpoint"), "{stderr}");
}
