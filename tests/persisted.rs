//! Persisted queries through the real HTTP API and WebSocket: Apollo's automatic persisted
//! queries (APQ), shared by every process on the database, and the `persisted_only` allow-list
//! with the documents the operator registers through the binary (`credits persisted add`).

use crate::on_both;
use crate::support::serve::credits_command;
use crate::support::{Backend, LEDGER_PROGRAM, TestApp, TestDb, error_code};
use credits::service::persisted::{Origin, hash_of, register, register_server_documents};
use serde_json::{Value, json};

const PROGRAM_NAME: &str = "query { program { name } }";
const PROGRAM_CURRENCY: &str = "query { program { currency } }";

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// POSTs a request body as given (the query may be left out) and returns the JSON response.
async fn post(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.client.post(format!("{}/graphql", app.address)).bearer_auth(token).json(&body).send().await.expect("an answer");
    assert_eq!(response.status(), 200, "GraphQL answers 200");
    response.json().await.expect("a JSON body")
}

/// A hash-only request, as an Apollo client sends it once the server knows the document.
async fn by_hash(app: &TestApp, token: &str, hash: &str, variables: Value) -> Value {
    post(app, token, json!({ "variables": variables, "extensions": apq(hash) })).await
}

/// The query with its hash: what an Apollo client sends after `PERSISTED_QUERY_NOT_FOUND`.
async fn with_hash(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    post(app, token, json!({ "query": query, "variables": variables, "extensions": apq(&hash_of(query)) })).await
}

fn security(persisted_only: bool) -> credits::app::Security {
    credits::app::Security {
        claims_per_minute_per_account: 100_000,
        claims_per_minute_per_ip: 100_000,
        persisted_only,
        ..Default::default()
    }
}

fn assert_not_found(response: &Value) {
    assert_eq!(error_code(response), "PERSISTED_QUERY_NOT_FOUND", "{response}");
    // Apollo clients also match the message.
    assert_eq!(response["errors"][0]["message"], json!("PersistedQueryNotFound"), "{response}");
    assert!(response.get("data").is_none_or(Value::is_null), "nothing ran: {response}");
}

async fn apq_registers_then_runs_by_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    let query = "query Balance($a: ID!) { account(id: $a) { balance { total } } }";
    let hash = hash_of(query);
    let vars = json!({ "a": "alice" });

    assert_not_found(&by_hash(&app, &app.service, &hash, vars.clone()).await);
    let registered = with_hash(&app, &app.service, query, vars.clone()).await;
    assert_eq!(registered["data"]["account"]["balance"]["total"], json!("0"), "{registered}");
    let by_hash_only = by_hash(&app, &app.service, &hash, vars.clone()).await;
    assert_eq!(by_hash_only, registered, "the stored document runs as the sent one did");

    // The hash in capitals is the same hash; the stored document still checks the caller.
    let upper = by_hash(&app, &app.service, &hash.to_ascii_uppercase(), vars.clone()).await;
    assert_eq!(upper, registered);
    let stranger = by_hash(&app, &app.user("mallory"), &hash, vars).await;
    assert_eq!(error_code(&stranger), "FORBIDDEN", "{stranger}");
}

async fn bad_hashes_are_refused_and_learn_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = hash_of("{ somethingElse }");
    let mismatch = post(&app, &app.service, json!({ "query": PROGRAM_NAME, "extensions": apq(&wrong) })).await;
    assert_eq!(error_code(&mismatch), "BAD_USER_INPUT", "{mismatch}");
    assert!(mismatch.get("data").is_none_or(Value::is_null), "{mismatch}");
    // Neither the text nor the hash it was sent with was stored.
    assert_not_found(&by_hash(&app, &app.service, &wrong, json!({})).await);
    assert_not_found(&by_hash(&app, &app.service, &hash_of(PROGRAM_NAME), json!({})).await);

    for extensions in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash_of(PROGRAM_NAME) } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let refused = post(&app, &app.service, json!({ "query": PROGRAM_NAME, "extensions": extensions })).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    }

    // A document that does not validate is answered with its errors and not learned.
    let invalid = "query { noSuchField }";
    let answered = with_hash(&app, &app.service, invalid, json!({})).await;
    assert_eq!(error_code(&answered), "BAD_USER_INPUT", "{answered}");
    assert_not_found(&by_hash(&app, &app.service, &hash_of(invalid), json!({})).await);
}

/// Two processes of a fleet on one database: a hash one learns, the other runs.
async fn another_process_runs_a_hash_the_first_learned(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_secured(first.db.shared(), backend, LEDGER_PROGRAM, security(false)).await;
    let hash = hash_of(PROGRAM_NAME);
    // The second one looks first, so a cached miss would show.
    assert_not_found(&by_hash(&second, &second.service, &hash, json!({})).await);
    let learned = with_hash(&first, &first.service, PROGRAM_NAME, json!({})).await;
    assert_eq!(learned["data"]["program"]["name"], json!("ledger-fixture"), "{learned}");
    let elsewhere = by_hash(&second, &second.service, &hash, json!({})).await;
    assert_eq!(elsewhere, learned);
}

/// With `persisted_only` on, only what the operator or the server registered runs, by hash or as
/// text; what a client taught the fleet through APQ does not, and APQ learns nothing new.
async fn persisted_only_runs_only_registered_documents(backend: Backend) {
    let open = TestApp::spawn(backend).await;
    let strict = TestApp::spawn_secured(open.db.shared(), backend, LEDGER_PROGRAM, security(true)).await;

    // Unregistered, as text, as text with its hash, and as a hash.
    let text = post(&strict, &strict.service, json!({ "query": PROGRAM_CURRENCY })).await;
    assert_eq!(error_code(&text), "PERSISTED_QUERY_NOT_ALLOWED", "{text}");
    assert!(text.get("data").is_none_or(Value::is_null), "{text}");
    let offered = with_hash(&strict, &strict.service, PROGRAM_CURRENCY, json!({})).await;
    assert_eq!(error_code(&offered), "PERSISTED_QUERY_NOT_ALLOWED", "{offered}");
    assert_not_found(&by_hash(&strict, &strict.service, &hash_of(PROGRAM_CURRENCY), json!({})).await);
    // The offer taught nothing: the open process does not know the hash either.
    assert_not_found(&by_hash(&open, &open.service, &hash_of(PROGRAM_CURRENCY), json!({})).await);

    // Learned through APQ by the open process: still not on the allow-list.
    let learned = with_hash(&open, &open.service, PROGRAM_NAME, json!({})).await;
    assert_eq!(learned["data"]["program"]["name"], json!("ledger-fixture"), "{learned}");
    assert_not_found(&by_hash(&strict, &strict.service, &hash_of(PROGRAM_NAME), json!({})).await);
    let text = post(&strict, &strict.service, json!({ "query": PROGRAM_NAME })).await;
    assert_eq!(error_code(&text), "PERSISTED_QUERY_NOT_ALLOWED", "{text}");

    // Registered as a server page's document (what `app::build` does at start): it now runs
    // every way, the APQ row promoted in place.
    let hashes = register_server_documents(&strict.ledger.db, &[PROGRAM_NAME]).await.unwrap();
    assert_eq!(hashes, vec![hash_of(PROGRAM_NAME)]);
    for response in [
        by_hash(&strict, &strict.service, &hash_of(PROGRAM_NAME), json!({})).await,
        post(&strict, &strict.service, json!({ "query": PROGRAM_NAME })).await,
        with_hash(&strict, &strict.service, PROGRAM_NAME, json!({})).await,
    ] {
        assert_eq!(response, learned, "a registered document runs");
    }
    // A document with several operations is one document: each runs by its name.
    let two = "query Name { program { name } }\nquery Currency { program { currency } }\n";
    register(&strict.ledger.db, two, Origin::Operator).await.unwrap();
    let currency = post(&strict, &strict.service, json!({ "extensions": apq(&hash_of(two)), "operationName": "Currency" })).await;
    assert!(currency["data"]["program"]["currency"].is_string(), "{currency}");
    // Still nothing else.
    let other = post(&strict, &strict.service, json!({ "query": "query { program { currency name } }" })).await;
    assert_eq!(error_code(&other), "PERSISTED_QUERY_NOT_ALLOWED", "{other}");
}

/// `credits persisted add` registers a file and every `.graphql` file under a directory, one
/// document per file, printing each hash; `persisted list` shows them; a `persisted_only`
/// server then runs them.
async fn the_cli_registers_files_and_directories(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("name.graphql");
    std::fs::write(&single, PROGRAM_NAME).unwrap();
    let pages = dir.path().join("pages");
    std::fs::create_dir_all(pages.join("nested")).unwrap();
    let both = "query Name { program { name } }\nquery Currency { program { currency } }\n";
    std::fs::write(pages.join("both.graphql"), both).unwrap();
    let currency = "query Currency($skip: Boolean!) { program { currency name @skip(if: $skip) } }";
    std::fs::write(pages.join("nested").join("currency.graphql"), currency).unwrap();
    std::fs::write(pages.join("notes.txt"), "not a document").unwrap();

    let cli = |args: &[&str]| {
        let output = credits_command().env("DATABASE_URL", &db.url).current_dir(dir.path()).args(args).output().unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (ok, stdout, stderr) = cli(&["persisted", "add", single.to_str().unwrap(), pages.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let printed: Vec<(String, String)> = stdout
        .lines()
        .map(|line| {
            let (hash, path) = line.split_once("  ").unwrap_or_else(|| panic!("hash and path: {line:?}"));
            (hash.to_string(), path.to_string())
        })
        .collect();
    let expected = vec![
        (hash_of(PROGRAM_NAME), single.display().to_string()),
        (hash_of(both), pages.join("both.graphql").display().to_string()),
        (hash_of(currency), pages.join("nested").join("currency.graphql").display().to_string()),
    ];
    assert_eq!(printed, expected, "one line per file, the text file left out");

    // Again: the same hashes, nothing new.
    let (ok, again, stderr) = cli(&["persisted", "add", pages.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(again.lines().count(), 2);
    let (ok, listed, stderr) = cli(&["persisted", "list"]);
    assert!(ok, "{stderr}");
    assert_eq!(listed.lines().count(), 3, "{listed}");
    for (hash, _) in &expected {
        let line = listed.lines().find(|l| l.starts_with(hash.as_str())).unwrap_or_else(|| panic!("{hash} in {listed}"));
        assert!(line.contains(" operator "), "{line}");
    }
    assert!(listed.contains("Currency,Name"), "operation names are listed: {listed}");

    // What is not a document is refused, and an empty directory says so.
    let broken = dir.path().join("broken.graphql");
    std::fs::write(&broken, "query { program { name }").unwrap();
    let (ok, _, stderr) = cli(&["persisted", "add", broken.to_str().unwrap()]);
    assert!(!ok && stderr.contains("broken.graphql"), "{stderr}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, _, stderr) = cli(&["persisted", "add", empty.to_str().unwrap()]);
    assert!(!ok && stderr.contains("no .graphql file"), "{stderr}");

    let strict = TestApp::spawn_secured(db, backend, LEDGER_PROGRAM, security(true)).await;
    let name = by_hash(&strict, &strict.service, &hash_of(PROGRAM_NAME), json!({})).await;
    assert_eq!(name["data"]["program"]["name"], json!("ledger-fixture"), "{name}");
    let from_dir = post(&strict, &strict.service, json!({ "query": currency, "variables": { "skip": true } })).await;
    assert!(from_dir["data"]["program"]["currency"].is_string() && from_dir["data"]["program"].get("name").is_none(), "{from_dir}");
    let both_by_name = post(&strict, &strict.service, json!({ "extensions": apq(&hash_of(both)), "operationName": "Name" })).await;
    assert_eq!(both_by_name["data"]["program"]["name"], json!("ledger-fixture"), "{both_by_name}");
    let unlisted = post(&strict, &strict.service, json!({ "query": PROGRAM_CURRENCY })).await;
    assert_eq!(error_code(&unlisted), "PERSISTED_QUERY_NOT_ALLOWED", "{unlisted}");
}

/// A spend sent by hash is the same keyed operation: the same key gives the same answer and
/// spends once; a new key spends again.
async fn a_mutation_by_hash_is_still_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    let granted = app.grant("alice", "10", "PROMOTIONAL", None, "grant-1").await;
    assert!(granted["data"]["grantCredits"]["lotId"].is_string(), "{granted}");
    let spend = "mutation Spend($a: ID!, $amt: CreditAmount!, $k: String!) {
        spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"chat\"}) { sequence amount availableAfter } }";
    let vars = |key: &str| json!({ "a": "alice", "amt": "3", "k": key });

    let first = with_hash(&app, &app.service, spend, vars("spend-1")).await;
    assert_eq!(first["data"]["spendCredits"]["availableAfter"], json!("7"), "{first}");
    let replay = by_hash(&app, &app.service, &hash_of(spend), vars("spend-1")).await;
    assert_eq!(replay, first, "same key, same answer");
    assert_eq!(app.balance("alice").await, "7", "spent once");
    let second = by_hash(&app, &app.service, &hash_of(spend), vars("spend-2")).await;
    assert_eq!(second["data"]["spendCredits"]["availableAfter"], json!("4"), "{second}");
    assert_ne!(second["data"]["spendCredits"]["sequence"], first["data"]["spendCredits"]["sequence"]);
    app.assert_audit_clean().await;
}

/// Hash-only requests are GET-able (what makes them cacheable by a CDN): a stored query runs
/// from the URL alone, an unknown hash answers `PERSISTED_QUERY_NOT_FOUND`, and a stored mutation
/// is refused with 405 and does not run, although the URL holds no text to see it in.
async fn hash_only_requests_work_over_get_and_mutations_do_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("alice").await;
    app.grant("alice", "10", "PROMOTIONAL", None, "grant-1").await;
    let get = |hash: String, variables: Value| {
        let app = &app;
        async move {
            let extensions = apq(&hash).to_string();
            let variables = variables.to_string();
            let response = app
                .client
                .get(format!("{}/graphql", app.address))
                .query(&[("extensions", extensions.as_str()), ("variables", variables.as_str())])
                .bearer_auth(&app.service)
                .header("accept", "application/json")
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("a JSON body"))
        }
    };
    let query = "query Total($a: ID!) { account(id: $a) { balance { total } } }";
    let (status, unknown) = get(hash_of(query), json!({ "a": "alice" })).await;
    assert_eq!(status, 200, "{unknown}");
    assert_not_found(&unknown);
    with_hash(&app, &app.service, query, json!({ "a": "alice" })).await;
    let (status, known) = get(hash_of(query), json!({ "a": "alice" })).await;
    assert_eq!((status, &known["data"]["account"]["balance"]["total"]), (200, &json!("10")), "{known}");

    let spend = "mutation Spend($k: String!) {
        spendCredits(input: {accountId: \"alice\", amount: \"3\", idempotencyKey: $k, feature: \"chat\"}) { availableAfter } }";
    let learned = with_hash(&app, &app.service, spend, json!({ "k": "post-1" })).await;
    assert_eq!(learned["data"]["spendCredits"]["availableAfter"], json!("7"), "{learned}");
    let (status, refused) = get(hash_of(spend), json!({ "k": "get-1" })).await;
    assert_eq!(status, 405, "a stored mutation by GET: {refused}");
    assert!(refused["errors"][0]["extensions"]["code"].is_string(), "{refused}");
    assert_eq!(app.balance("alice").await, "7", "the GET spent nothing");
    app.assert_audit_clean().await;
}

/// The WebSocket goes through the same rules: a hash learned over HTTP runs there, and
/// `persisted_only` refuses there what it refuses over HTTP.
async fn the_websocket_obeys_the_same_rules(backend: Backend) {
    use crate::support::ws::{code_of, connect, next, send};
    let open = TestApp::spawn(backend).await;
    let strict = TestApp::spawn_secured(open.db.shared(), backend, LEDGER_PROGRAM, security(true)).await;

    async fn over_socket(address: &str, token: &str, id: &str, payload: Value) -> Value {
        let mut socket = connect(address, token).await;
        send(&mut socket, json!({ "id": id, "type": "subscribe", "payload": payload })).await;
        let answer = next(&mut socket).await;
        assert_eq!((&answer["type"], &answer["id"]), (&json!("next"), &json!(id)), "{answer}");
        answer["payload"].clone()
    }

    let hash = hash_of(PROGRAM_NAME);
    let unknown = over_socket(&open.address, &open.service, "1", json!({ "extensions": apq(&hash) })).await;
    assert_eq!(code_of(&unknown), "PERSISTED_QUERY_NOT_FOUND", "{unknown}");
    with_hash(&open, &open.service, PROGRAM_NAME, json!({})).await;
    let known = over_socket(&open.address, &open.service, "2", json!({ "extensions": apq(&hash) })).await;
    assert_eq!(known["data"]["program"]["name"], json!("ledger-fixture"), "{known}");

    let refused = over_socket(&strict.address, &strict.service, "3", json!({ "query": PROGRAM_CURRENCY })).await;
    assert_eq!(code_of(&refused), "PERSISTED_QUERY_NOT_ALLOWED", "{refused}");
    register(&strict.ledger.db, PROGRAM_CURRENCY, Origin::Operator).await.unwrap();
    let allowed = over_socket(&strict.address, &strict.service, "4", json!({ "query": PROGRAM_CURRENCY })).await;
    assert!(allowed["data"]["program"]["currency"].is_string(), "{allowed}");
}

on_both!(
    apq_registers_then_runs_by_hash,
    bad_hashes_are_refused_and_learn_nothing,
    another_process_runs_a_hash_the_first_learned,
    persisted_only_runs_only_registered_documents,
    the_cli_registers_files_and_directories,
    a_mutation_by_hash_is_still_idempotent,
    the_websocket_obeys_the_same_rules,
    hash_only_requests_work_over_get_and_mutations_do_not,
);
