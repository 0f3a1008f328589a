//! The portal's Usage, History and Market pages in Chromium (`tests/browser/portal_pages.mjs`)
//! against the real server on both databases: the data is made through the API with a service
//! token, the page is opened as a backend opens it for its user (the link `createPortalSession`
//! returns), and what the page shows is compared with what the API answers for the same month,
//! day, filter or page. Also: a reason holding markup shows as text, no request leaves the
//! server's origin, nothing fails in the console, axe-core finds nothing serious, and each page
//! fits a 390 px wide phone. `PORTAL_SCREENSHOTS=docs` saves
//! `docs/portal-{usage,history,market}.png` (from the SQLite run). The Settings page
//! (`tests/browser/portal-settings.mjs`): auto top-up, spend limits and gifts changed in the page
//! and checked through the API (`docs/portal-settings.png`).

use crate::on_both;
use crate::support::browser::BrowserScript;
use crate::support::{Backend, TestApp};
use chrono::{DateTime, Duration, Utc};
use credits::service::jobs::Job;
use serde_json::{Value, json};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let r = app.gql(token, query, variables).await;
    assert!(r["errors"].is_null(), "{query}: {r}");
    r["data"].clone()
}

async fn container(app: &TestApp, mutation: &str, account: &str, id: &str, tier: &str, code_supporter: bool, key: &str) {
    let query = if mutation == "startContainer" {
        "mutation($a: ID!, $c: String!, $t: String!, $s: Boolean!, $k: String!) {
           startContainer(input: {accountId: $a, containerId: $c, tier: $t, codeSupporter: $s, idempotencyKey: $k}) { container { state } } }"
    } else {
        "mutation($a: ID!, $c: String!, $k: String!) { stopContainer(input: {accountId: $a, containerId: $c, idempotencyKey: $k}) { container { state } } }"
    };
    ok(app, &app.service, query, json!({ "a": account, "c": id, "t": tier, "s": code_supporter, "k": key })).await;
}

async fn record(app: &TestApp, account: &str, mut sample: Value, key: &str) {
    sample["accountId"] = json!(account);
    sample["idempotencyKey"] = json!(key);
    ok(app, &app.service, "mutation($i: RecordUsageInput!) { recordUsage(input: $i) { settlement { total } } }", json!({ "i": sample }))
        .await;
}

async fn grant(app: &TestApp, account: &str, amount: &str, reason: &str, key: &str) {
    ok(
        app,
        &app.admin,
        "mutation($a: ID!, $amt: CreditAmount!, $r: String, $k: String!) {
           grantCredits(input: {accountId: $a, amount: $amt, class: PROMOTIONAL, reason: $r, idempotencyKey: $k}) { sequence } }",
        json!({ "a": account, "amt": amount, "r": reason, "k": key }),
    )
    .await;
}

async fn spend(app: &TestApp, account: &str, amount: &str, feature: &str, key: &str) {
    ok(
        app,
        &app.service,
        "mutation($a: ID!, $amt: CreditAmount!, $f: String!, $k: String!) {
           spendCredits(input: {accountId: $a, amount: $amt, feature: $f, idempotencyKey: $k}) { sequence } }",
        json!({ "a": account, "amt": amount, "f": feature, "k": key }),
    )
    .await;
}

/// The screenshots folder, for the SQLite run only (one set of pictures).
fn screenshots(backend: Backend) -> String {
    match (backend, std::env::var("PORTAL_SCREENSHOTS")) {
        (Backend::Sqlite, Ok(dir)) if !dir.is_empty() => {
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
        _ => String::new(),
    }
}

/// What the browser must not have done on any page.
fn assert_clean(seen: &Value) {
    assert_eq!(seen["foreign"], json!([]), "the page tried to reach another host: {}", seen["foreign"]);
    assert_eq!(seen["problems"], json!([]), "errors in the page (a policy violation, a failed load): {}", seen["problems"]);
    assert_eq!(seen["dialogs"], json!([]), "something ran script: {}", seen["dialogs"]);
    for (hash, fit) in seen["phone"].as_object().unwrap() {
        assert!(fit["scrollWidth"].as_i64().unwrap() <= fit["innerWidth"].as_i64().unwrap(), "{hash} scrolls sideways at 390 px: {fit}");
        assert_eq!(fit["axe"], json!([]), "axe-core finds serious problems on {hash} at 390 px");
    }
    for page in ["usage", "history", "market"] {
        let found = if page == "usage" { &seen[page]["current"]["axe"] } else { &seen[page]["axe"] };
        assert!(found.is_null() || *found == json!([]), "axe-core finds serious problems on {page}: {found}");
    }
}

/// The portal link a backend gets for its user (`createPortalSession`): the token in the fragment.
async fn portal_link(app: &TestApp, account: &str) -> String {
    let opened = ok(app, &app.service, "mutation($a: ID!) { createPortalSession(accountId: $a) { url } }", json!({ "a": account })).await;
    opened["createPortalSession"]["url"].as_str().unwrap().to_string()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

const RESOURCE_NAMES: [(&str, &str); 5] =
    [("CONTAINER", "Containers"), ("ADDON", "Add-ons"), ("STORAGE", "Storage"), ("TRAFFIC", "Traffic"), ("AI", "AI")];

fn resource_name(resource: &str) -> &'static str {
    RESOURCE_NAMES.iter().find(|(r, _)| *r == resource).unwrap().1
}

/// The page's figures and resource chart are the API's for that month.
fn assert_month_shown(shown: &Value, report: &Value) {
    assert_eq!(shown["month"], report["month"]);
    for figure in ["total", "deducted", "uncollected"] {
        assert_eq!(shown[figure], report[figure], "{figure}: the page shows {shown}, the API says {report}");
    }
    let chart = &shown["charts"][0];
    assert_eq!(chart["role"], "img");
    assert_eq!(chart["styled"], 0, "no style attributes (the CSP forbids them)");
    let label = chart["label"].as_str().unwrap();
    let resources = report["resources"].as_array().unwrap();
    assert_eq!(chart["bars"], resources.len(), "a bar per resource");
    let rows: Vec<Value> =
        resources.iter().map(|r| json!([resource_name(r["resource"].as_str().unwrap()), r["amount"].as_str().unwrap()])).collect();
    assert_eq!(chart["rows"], json!(rows), "the chart's table holds the API's figures");
    for r in resources {
        let spoken = format!("{} {}", resource_name(r["resource"].as_str().unwrap()), r["amount"].as_str().unwrap());
        assert!(label.contains(&spoken), "the chart's label reads {spoken}: {label}");
    }
}

const USAGE: &str = "query($a: ID!, $m: String!, $d: NaiveDate!, $after: String) { account(id: $a) { usage(month: $m) {
    month total deducted uncollected resources { resource amount }
    containerDay(day: $d) { containerId resource amount }
    aiLogs(first: 10, after: $after) { totalCount pageInfo { endCursor hasNextPage } nodes { kind model amount } } } } }";

const HISTORY: &str = "query($a: ID!, $f: HistoryFilter, $after: String) { account(id: $a) {
    history(filter: $f, first: 10, after: $after) { pageInfo { endCursor hasNextPage } nodes { sequence } } } }";

/// The API's history pages with `filter`: the first, and the second when there is one.
async fn history_pages(app: &TestApp, account: &str, filter: Value, pages: usize) -> Vec<Vec<String>> {
    let mut after = Value::Null;
    let mut found = Vec::new();
    for _ in 0..pages {
        let data = ok(app, &app.service, HISTORY, json!({ "a": account, "f": filter, "after": after })).await;
        let history = &data["account"]["history"];
        found.push(history["nodes"].as_array().unwrap().iter().map(|n| n["sequence"].as_str().unwrap().to_string()).collect());
        if history["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = history["pageInfo"]["endCursor"].clone();
    }
    found
}

/// Usage (a metered program): the month's total, deducted and uncollected, the resource chart,
/// the day's container log with tier and add-on, the AI uses paged with the model for Chat only,
/// another month picked. History: paging forward and back, three filters, markup as text.
async fn usage_and_history_pages_show_what_the_api_gives(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // October: an hour of Small, and a journal to page and filter, a day apart.
    app.clock.set(at("2026-10-20T08:00:00Z"));
    app.create_account("u").await;
    app.grant("u", "500", "PAID", None, "paid").await;
    container(&app, "startContainer", "u", "old", "small", false, "oct-start").await;
    app.clock.set(at("2026-10-20T09:00:00Z"));
    container(&app, "stopContainer", "u", "old", "", false, "oct-stop").await;
    for day in 21..=28 {
        app.clock.set(at(&format!("2026-10-{day}T12:00:00Z")));
        grant(&app, "u", "3", &format!("Thanks for day {day}"), &format!("grant-{day}")).await;
        spend(&app, "u", "1", if day % 2 == 0 { "chat" } else { "export" }, &format!("spend-{day}")).await;
    }
    // November 10th: 90 minutes of Micro with Code Supporter, storage over the quota, traffic
    // over the allowance; then twelve AI uses (one Chat, eleven Snaps).
    app.clock.set(at("2026-11-10T10:00:00Z"));
    container(&app, "startContainer", "u", "web", "micro", true, "nov-start").await;
    record(&app, "u", json!({ "storage": { "containerId": "web", "gb": "6" } }), "storage").await;
    app.clock.set(at("2026-11-10T11:30:00Z"));
    record(&app, "u", json!({ "traffic": { "containerId": "web", "bytes": "10500000000" } }), "traffic").await;
    container(&app, "stopContainer", "u", "web", "", false, "nov-stop").await;
    record(&app, "u", json!({ "ai": { "kind": "CHAT", "containerId": "web", "tokens": { "input": 1000, "output": 500 } } }), "chat").await;
    for i in 0..11 {
        app.clock.set(at("2026-11-10T12:00:00Z") + Duration::minutes(i));
        record(&app, "u", json!({ "ai": { "kind": "SNAP" } }), &format!("snap-{i}")).await;
    }
    // The newest entries: reasons a backend wrote with markup in them.
    app.clock.set(at("2026-11-10T13:00:00Z"));
    grant(&app, "u", "1", "<b>x</b>", "markup-bold").await;
    grant(&app, "u", "1", "<img src=x onerror=alert(1)>", "markup-img").await;

    let november = ok(&app, &app.service, USAGE, json!({ "a": "u", "m": "2026-11", "d": "2026-11-10" })).await;
    let november = &november["account"]["usage"];
    let ai_second = ok(
        &app,
        &app.service,
        USAGE,
        json!({ "a": "u", "m": "2026-11", "d": "2026-11-10", "after": november["aiLogs"]["pageInfo"]["endCursor"] }),
    )
    .await;
    let ai_second = &ai_second["account"]["usage"]["aiLogs"];
    let october = ok(&app, &app.service, USAGE, json!({ "a": "u", "m": "2026-10", "d": "2026-10-20" })).await;
    let october = &october["account"]["usage"];
    assert_ne!(november["total"], json!("0"), "November has usage: {november}");
    assert_ne!(october["total"], json!("0"), "October has usage: {october}");

    let filters = json!([
        { "name": "grants", "kind": "GRANT" },
        { "name": "chat", "kind": "SPEND", "feature": "chat" },
        { "name": "dates", "from": "2026-10-22", "to": "2026-10-24" },
    ]);
    let link = portal_link(&app, "u").await;
    let shots = screenshots(backend);
    let filters_text = filters.to_string();
    let env = [
        ("URL", link.as_str()),
        ("MODE", "metering"),
        // The page reads the date filter in the browser's time zone, as it shows the times.
        ("TZ", "UTC"),
        ("OTHER_MONTH", "2026-10"),
        ("HISTORY_FILTERS", filters_text.as_str()),
        ("SCREENSHOTS", shots.as_str()),
    ];
    let Some(script) = BrowserScript::start("portal_pages.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_clean(&seen);

    // Usage, the current month (the server's: November).
    let usage = &seen["usage"];
    let current = &usage["current"];
    assert_eq!(current["months"][0], "2026-11", "the picker starts at the server's month: {current}");
    assert_eq!(current["months"].as_array().unwrap().len(), 13, "this month and a year back");
    assert_month_shown(current, november);
    assert_eq!(current["day"], "2026-11-10", "today's container log first");
    let web_lines: Vec<&Value> = november["containerDay"].as_array().unwrap().iter().filter(|l| l["containerId"] == json!("web")).collect();
    let log = current["containers"].as_array().unwrap().iter().find(|c| c["container"] == "web").unwrap_or_else(|| panic!("{current}"));
    assert_eq!(log["tags"], json!(["tier micro", "Code Supporter"]), "{log}");
    let shown: Vec<(String, String)> =
        log["rows"].as_array().unwrap().iter().map(|r| (r[0].as_str().unwrap().into(), r[3].as_str().unwrap().into())).collect();
    let expected: Vec<(String, String)> =
        web_lines.iter().map(|l| (l["resource"].as_str().unwrap().into(), l["amount"].as_str().unwrap().into())).collect();
    assert_eq!(shown, expected, "the day's lines of the container, with the API's amounts");
    assert_eq!(log["rows"][0][2], "1 h 30 min", "its running time: {log}");

    // The AI uses: ten, then the other two, then back; the model shown for Chat only.
    let ai_rows = |rows: &Value| -> Vec<(String, String, String)> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| (r[1].as_str().unwrap().into(), r[3].as_str().unwrap().into(), r[5].as_str().unwrap().into()))
            .collect()
    };
    let ai_expected = |nodes: &Value| -> Vec<(String, String, String)> {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let kind = if n["kind"] == "CHAT" { "Chat" } else { "Snap" };
                let model = if n["kind"] == "CHAT" { n["model"].as_str().unwrap() } else { "—" };
                (kind.into(), model.into(), n["amount"].as_str().unwrap().into())
            })
            .collect()
    };
    assert_eq!(november["aiLogs"]["totalCount"], 12);
    assert_eq!(ai_rows(&current["ai"]), ai_expected(&november["aiLogs"]["nodes"]));
    assert_eq!(current["aiPager"], json!({ "newer": false, "older": true, "status": "12 in all" }));
    assert_eq!(ai_rows(&usage["olderAi"]["rows"]), ai_expected(&ai_second["nodes"]));
    assert_eq!(usage["olderAi"]["pager"]["older"], false, "the last page");
    assert!(ai_rows(&usage["olderAi"]["rows"]).iter().any(|r| r.0 == "Chat" && r.1 == "claude-sonnet-4.6"), "{usage}");
    assert_eq!(usage["newerAgain"]["rows"], current["ai"], "back to the first page");
    assert_eq!(usage["newerAgain"]["pager"]["newer"], false);

    // October, picked.
    assert_month_shown(&usage["other"], october);

    // History: three pages forward, then one back, as the API pages it.
    let history = &seen["history"];
    let api_pages = history_pages(&app, "u", Value::Null, 3).await;
    assert_eq!(api_pages.len(), 3, "the journal holds three pages: {api_pages:?}");
    for (index, api_page) in api_pages.iter().enumerate() {
        assert_eq!(&strings(&history["pages"][index]["sequences"]), api_page, "page {index}");
    }
    assert_eq!(history["pages"][3]["sequences"], history["pages"][1]["sequences"], "back to the second page");
    assert_eq!(history["pages"][0]["pager"]["newer"], false);
    assert_eq!(history["pages"][0]["pager"]["older"], true);
    // Markup in a reason is text.
    let reasons = history["reasons"].as_array().unwrap();
    for markup in ["<b>x</b>", "<img src=x onerror=alert(1)>"] {
        assert!(reasons.contains(&json!({ "text": markup, "elements": 0 })), "{markup} shows as text: {reasons:?}");
    }
    assert_eq!(history["injected"], 0, "no element came out of a reason");
    for filter in filters.as_array().unwrap() {
        let name = filter["name"].as_str().unwrap();
        let mut api_filter = json!({});
        if let Some(kind) = filter["kind"].as_str() {
            api_filter["kinds"] = json!([kind]);
        }
        if let Some(feature) = filter["feature"].as_str() {
            api_filter["feature"] = json!(feature);
        }
        if let Some(from) = filter["from"].as_str() {
            api_filter["from"] = json!(format!("{from}T00:00:00.000Z"));
        }
        if let Some(to) = filter["to"].as_str() {
            // The page's "to" is inclusive: until the next day's start.
            let next = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap() + Duration::days(1);
            api_filter["until"] = json!(format!("{next}T00:00:00.000Z"));
        }
        let expected = history_pages(&app, "u", api_filter, 2).await;
        let shown = &history["filtered"][name];
        assert!(!expected[0].is_empty(), "filter {name} keeps something");
        assert_eq!(strings(&shown["first"]), expected[0], "filter {name}: {shown}");
        match expected.get(1) {
            Some(second) => assert_eq!(&strings(&shown["second"]), second, "filter {name}, page 2"),
            None => assert_eq!(shown["pager"]["older"], false, "filter {name} has one page"),
        }
    }
    // The date filter kept October 22nd to 24th: a grant and a spend a day.
    assert_eq!(history["filtered"]["dates"]["first"].as_array().unwrap().len(), 6);
    // Four chat spends (days 22, 24, 26, 28).
    assert_eq!(history["filtered"]["chat"]["first"].as_array().unwrap().len(), 4);
}

async fn verify(app: &TestApp, account: &str) {
    ok(
        app,
        &app.service,
        "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { identityVerified } }",
        json!({ "a": account }),
    )
    .await;
}

async fn asks(app: &TestApp, account: &str, hardware: &str, capacity: i32, default: &str, prices: Value) {
    ok(
        app,
        &app.user(account),
        "mutation($a: ID!, $h: HardwareClass!, $c: Int!, $d: CreditAmount!, $p: [WorkloadAskInput!]!) {
           setAskingPrices(input: {accountId: $a, hardwareClass: $h, capacity: $c, defaultPrice: $d, prices: $p}) { workload } }",
        json!({ "a": account, "h": hardware, "c": capacity, "d": default, "p": prices }),
    )
    .await;
}

async fn submit(app: &TestApp, account: &str, workload: &str, inputs: Value, key: &str) {
    ok(
        app,
        &app.user(account),
        "mutation($a: ID!, $w: String!, $i: [JobInputItem!]!, $k: String!) {
           submitJob(input: {accountId: $a, workload: $w, inputs: $i, idempotencyKey: $k}) { jobId } }",
        json!({ "a": account, "w": workload, "i": inputs, "k": key }),
    )
    .await;
}

const RATES: &str = "query($w: String!) { marketRates(workload: $w, history: 12) {
    workload suggestedBid now { average min max providers } history { at rate { average min max providers } } } }";

/// Market (archipelag): the rates of the workloads the user's jobs ran, with their 5-minute
/// history as a chart and a table, a workload looked up by name that does not exist refused with
/// the server's message, and the user's jobs paged both ways.
async fn market_page_shows_rates_and_jobs(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    for id in ["c", "p1", "p2"] {
        app.create_account(id).await;
        verify(&app, id).await;
    }
    asks(&app, "p1", "ENTRY", 20, "3", json!([{ "workload": "llm-chat", "price": "2" }])).await;
    asks(&app, "p2", "HIGH_END", 1, "4", json!([])).await;
    // Three 5-minute marks, the llm-chat ask moving between them.
    let now = app.clock.now();
    let mark = now - Duration::seconds(now.timestamp() % 300) + Duration::minutes(5);
    for (step, price) in [(0, "2.5"), (1, "1.5"), (2, "2")] {
        app.ledger.run_job(Job::SnapshotMarketRates, mark + Duration::minutes(5 * step) + Duration::seconds(1)).await.unwrap();
        asks(&app, "p1", "ENTRY", 20, "3", json!([{ "workload": "llm-chat", "price": price }])).await;
    }
    // Thirteen jobs: eight chats (one input holds markup), a refused low bid, then four images.
    let chats: Vec<Value> = (0..8)
        .map(|i| json!({ "input": if i == 0 { "<i>hello</i>".to_string() } else { format!("question {i}") }, "bidPrice": "5" }))
        .collect();
    submit(&app, "c", "llm-chat", json!(chats), "chats").await;
    submit(&app, "c", "llm-chat", json!([{ "input": "cheap", "bidPrice": "0.5" }]), "low").await;
    let images: Vec<Value> = (0..4).map(|i| json!({ "input": format!("a picture {i}"), "bidPrice": "10" })).collect();
    submit(&app, "c", "image", json!(images), "images").await;

    let jobs_query = "query($after: String) { me { jobs(first: 10, after: $after) { pageInfo { endCursor hasNextPage } nodes { jobId workload status input } } } }";
    let user = app.user("c");
    let first = ok(&app, &user, jobs_query, json!({})).await;
    let second = ok(&app, &user, jobs_query, json!({ "after": first["me"]["jobs"]["pageInfo"]["endCursor"] })).await;
    let ids = |data: &Value| -> Vec<String> {
        data["me"]["jobs"]["nodes"].as_array().unwrap().iter().map(|n| n["jobId"].as_str().unwrap().to_string()).collect()
    };
    let mut workloads: Vec<String> = Vec::new();
    for node in first["me"]["jobs"]["nodes"].as_array().unwrap().iter().chain(second["me"]["jobs"]["nodes"].as_array().unwrap()) {
        let workload = node["workload"].as_str().unwrap().to_string();
        if !workloads.contains(&workload) {
            workloads.push(workload);
        }
    }
    assert_eq!(workloads, ["image", "llm-chat"], "newest first");
    // The page shows the catalog's workloads first, in its order, then any other the jobs ran.
    let catalog = ok(&app, &user, "{ program { catalog { feature } } }", json!({})).await;
    let features = catalog["program"]["catalog"].as_array().unwrap().iter().map(|c| c["feature"].as_str().unwrap().to_string());
    let mut shown: Vec<String> = Vec::new();
    for workload in features.chain(workloads.iter().cloned()) {
        if !shown.contains(&workload) {
            shown.push(workload);
        }
    }
    assert_eq!(shown, ["llm-chat", "image"]);
    let workloads = shown;
    let unknown = app.gql(&user, RATES, json!({ "w": "no-such-workload" })).await;
    let refusal = unknown["errors"][0]["message"].as_str().unwrap_or_else(|| panic!("{unknown}")).to_string();

    let link = portal_link(&app, "c").await;
    let shots = screenshots(backend);
    let env = [("URL", link.as_str()), ("MODE", "market"), ("SCREENSHOTS", shots.as_str())];
    let Some(script) = BrowserScript::start("portal_pages.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_clean(&seen);
    let market = &seen["market"];

    let cards = market["cards"].as_array().unwrap();
    assert_eq!(cards.iter().map(|c| c["workload"].as_str().unwrap()).collect::<Vec<_>>(), workloads, "{market}");
    for (index, workload) in workloads.iter().enumerate() {
        let rates = ok(&app, &user, RATES, json!({ "w": workload })).await;
        let rates = &rates["marketRates"];
        let card = &cards[index];
        let now = &rates["now"];
        assert_eq!(card["figures"]["average"], now["average"], "{workload}: {card}");
        assert_eq!(card["figures"]["range"], json!(format!("{} – {}", now["min"].as_str().unwrap(), now["max"].as_str().unwrap())));
        assert_eq!(card["figures"]["providers"], json!(now["providers"].to_string()));
        assert_eq!(card["figures"]["suggested"], rates["suggestedBid"]);
        let chart = &market["charts"][index];
        let history = rates["history"].as_array().unwrap();
        assert_eq!(history.len(), 3, "three marks: {rates}");
        assert_eq!((&chart["role"], &chart["points"], &chart["line"], &chart["styled"]), (&json!("img"), &json!(3), &json!(1), &json!(0)));
        // The table lists the snapshots newest first, as the API does, with their figures.
        let table: Vec<Vec<String>> =
            chart["rows"].as_array().unwrap().iter().map(|r| strings(&r.as_array().unwrap()[1..].to_vec().into())).collect();
        let expected: Vec<Vec<String>> = history
            .iter()
            .map(|s| {
                let r = &s["rate"];
                vec![
                    r["average"].as_str().unwrap().into(),
                    r["min"].as_str().unwrap().into(),
                    r["max"].as_str().unwrap().into(),
                    r["providers"].to_string(),
                ]
            })
            .collect();
        assert_eq!(table, expected, "{workload}");
        let label = chart["label"].as_str().unwrap();
        for snapshot in history {
            assert!(label.contains(snapshot["rate"]["average"].as_str().unwrap()), "the label reads every average: {label}");
        }
    }
    let llm = history_averages(&ok(&app, &user, RATES, json!({ "w": "llm-chat" })).await);
    // p2 asks its default 4 for every workload; p1's llm-chat ask was 2, 2.5, then 1.5 at the marks.
    assert_eq!(llm, ["2.75", "3.25", "3"], "the ask moved between the marks (newest first)");

    // Jobs: ten, the other three, back to the first ten.
    let shown =
        |page: &Value| -> Vec<String> { page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect() };
    assert_eq!(shown(&market["jobs"][0]), ids(&first));
    assert_eq!(shown(&market["jobs"][1]), ids(&second));
    assert_eq!(shown(&market["jobs"][2]), ids(&first));
    assert_eq!(market["jobs"][0]["pager"], json!({ "newer": false, "older": true, "status": "13 in all" }));
    assert_eq!(market["jobs"][1]["pager"]["older"], false);
    let all: Vec<&Value> =
        market["jobs"][0]["jobs"].as_array().unwrap().iter().chain(market["jobs"][1]["jobs"].as_array().unwrap()).collect();
    assert!(all.iter().any(|j| j["input"] == "<i>hello</i>"), "an input with markup shows as text");
    assert!(all.iter().any(|j| j["status"] == "REJECTED"), "the low bid is listed, rejected");
    assert_eq!(market["refusal"], json!(refusal), "the server's message for an unknown workload");
}

fn history_averages(data: &Value) -> Vec<String> {
    data["marketRates"]["history"].as_array().unwrap().iter().map(|s| s["rate"]["average"].as_str().unwrap().to_string()).collect()
}

on_both!(usage_and_history_pages_show_what_the_api_gives, market_page_shows_rates_and_jobs);

/// The portal's document, as the page sends it: the whole text with an operation name.
async fn portal_operation(app: &TestApp, token: &str, operation: &str, variables: Value) -> Value {
    let document = include_str!("../web/portal/portal.graphql");
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .json(&json!({ "query": document, "operationName": operation, "variables": variables }))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

/// Without a browser too: each operation the three pages send runs for a user, within the
/// server's limits, on the whole document (which the server validates as one).
async fn the_pages_operations_run_for_a_user(backend: Backend) {
    let metered = TestApp::spawn(backend).await;
    metered.create_account("u").await;
    let user = metered.user("u");
    let month = ok(&metered, &user, "{ me { usage { month } } }", json!({})).await["me"]["usage"]["month"].as_str().unwrap().to_string();
    for (operation, variables) in [
        ("PortalUsageMonth", json!({ "month": null })),
        ("PortalUsageContainerDay", json!({ "month": month, "day": format!("{month}-01") })),
        ("PortalUsageAiLogs", json!({ "month": month, "first": 10 })),
        (
            "PortalHistory",
            json!({ "filter": { "kinds": ["GRANT"], "feature": "chat", "from": "2026-01-01T00:00:00Z" }, "first": 10, "withCount": true }),
        ),
        ("PortalHistory", json!({ "last": 10, "withCount": false })),
    ] {
        let r = portal_operation(&metered, &user, operation, variables).await;
        assert!(r["errors"].is_null() && r["data"].is_object(), "{operation}: {r}");
    }
    let market = TestApp::spawn_with(backend, "archipelag").await;
    market.create_account("c").await;
    let user = market.user("c");
    for (operation, variables) in
        [("PortalMarketRates", json!({ "workload": "llm-chat", "history": 12 })), ("PortalMarketJobs", json!({ "first": 10 }))]
    {
        let r = portal_operation(&market, &user, operation, variables).await;
        assert!(r["errors"].is_null() && r["data"].is_object(), "{operation}: {r}");
    }
}

on_both!(the_pages_operations_run_for_a_user);

const GIFTS_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");
const CONTROLS: &str = "query($a: ID!) { account(id: $a) {
    autoTopUp { enabled threshold amount targetBalance monthlyCap boughtThisMonth failuresInARow maxFailures pendingPurchase { id credits } }
    spendLimits { maxPerCharge limits { feature period max used remaining exceeded } } } }";
const GIFTS_OF: &str = "query($a: ID!) { account(id: $a) { history(first: 10, filter: {kinds: [GIFT_SENT, GIFT_RECEIVED]}) {
    nodes { kind amount reason counterparty } } } }";

async fn controls_of(app: &TestApp, account: &str) -> Value {
    ok(app, &app.service, CONTROLS, json!({ "a": account })).await["account"].clone()
}

/// Settings (a program with gifts): in Chromium, a user turns auto top-up on (first refused for
/// an amount under the minimum purchase, with the server's BAD_USER_INPUT message and the field
/// marked, and nothing saved), sets spend limits (first refused for a duplicate), sees what they
/// used after a spend and what a failed top-up payment did, and sends a gift whose answer is
/// lost: sent again under the same idempotency key, it is given once. A gift to an unknown
/// account shows NOT_FOUND's message.
async fn a_user_changes_settings_and_sends_credits_in_the_portal(backend: Backend) {
    let app = TestApp::spawn_with(backend, GIFTS_PROGRAM).await;
    for id in ["alice", "bob"] {
        app.create_account(id).await;
    }
    let granted = app.grant("alice", "200", "PAID", None, "alice-paid").await;
    assert!(granted["errors"].is_null(), "{granted}");
    let link = portal_link(&app, "alice").await;
    let shots = screenshots(backend);
    let env = [("URL", link.as_str()), ("MODE", "gifts"), ("RECIPIENT", "bob"), ("PORTAL_SCREENSHOTS", shots.as_str())];
    let Some(mut script) = BrowserScript::start("portal-settings.mjs", &app.address, &env).await else {
        return;
    };
    script.reached("auto-refused").await;
    assert_eq!(controls_of(&app, "alice").await["autoTopUp"], Value::Null, "a refused setting saves nothing");
    script.reached("auto-saved").await;
    let saved = controls_of(&app, "alice").await;
    let auto = &saved["autoTopUp"];
    assert_eq!(
        (&auto["enabled"], &auto["threshold"], &auto["amount"], &auto["targetBalance"], &auto["monthlyCap"]),
        (&json!(true), &json!("250"), &json!("100"), &Value::Null, &json!("500")),
        "{saved}"
    );
    // 200 credits under a threshold of 250: a top-up was asked for at once.
    let pending = auto["pendingPurchase"]["id"].as_str().unwrap_or_else(|| panic!("a pending top-up: {saved}")).to_string();
    script.reached("limits-refused").await;
    assert_eq!(controls_of(&app, "alice").await["spendLimits"], json!({ "maxPerCharge": null, "limits": [] }), "nothing saved");
    script.reached("limits-saved").await;
    // A spend the limits count, and the top-up's payment failing.
    spend(&app, "alice", "5", "chat", "chat-5").await;
    ok(
        &app,
        &app.service,
        "mutation($id: ID!) { failPurchase(input: {purchaseId: $id, reason: \"card declined\", idempotencyKey: \"declined\"}) { status } }",
        json!({ "id": pending }),
    )
    .await;
    let later = controls_of(&app, "alice").await;
    // Only now may the page read again: before, it could show the limits without the spend.
    script.resume("spent").await;
    let seen = script.finish().await;
    assert_eq!(seen["foreign"], json!([]), "the page tried to reach another host: {}", seen["foreign"]);
    assert_eq!(seen["problems"], json!([]), "errors in the page: {}", seen["problems"]);
    assert!(seen["expectedProblems"].as_i64().unwrap() <= 1, "only the lost answer failed to load: {seen}");
    for (when, violations) in seen["axe"].as_object().unwrap() {
        assert_eq!(violations, &json!([]), "axe-core on the Settings page ({when})");
    }
    assert!(seen["phone"]["scrollWidth"].as_i64() <= seen["phone"]["innerWidth"].as_i64(), "{seen}");
    assert!(seen["nav"].as_array().unwrap().contains(&json!("Settings")), "{seen}");
    assert_eq!(seen["gift"], 1, "the program has gifts: the form is there");
    assert_eq!(seen["stray"], json!([]), "no value went missing on the page: {seen}");
    assert_eq!(seen["first"]["enabled"], "false", "{seen}");

    // Auto top-up: refused by the server for the amount, then by the page for its form; saved.
    assert_eq!(seen["enabledByKeyboard"], true);
    let refused = &seen["autoRefused"];
    assert_eq!((&refused["ok"], &refused["code"]), (&json!(false), &json!("BAD_USER_INPUT")), "{seen}");
    let text = refused["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Please check what you entered: The amount must be a whole number of credits, at least the minimum purchase of 50"
        ),
        "{text}"
    );
    assert_eq!(refused["invalid"], json!(["auto-top-up-amount"]), "the field at fault is marked: {seen}");
    assert_eq!(refused["focused"], "auto-top-up-amount", "and the keyboard is on it: {seen}");
    assert_eq!(seen["autoMalformed"]["invalid"], json!(["auto-top-up-amount"]), "{seen}");
    assert_eq!(seen["autoSaved"]["text"], "Auto top-up is on.", "{seen}");
    assert_eq!(seen["autoAfterSave"]["enabled"], "true", "{seen}");
    assert_eq!(seen["autoAfterSave"]["pending"], json!(pending), "the waiting top-up is shown: {seen}");

    // Spend limits: the duplicate refused with the server's words, then the set saved.
    let limits_refused = &seen["limitsRefused"];
    assert_eq!(limits_refused["code"], "BAD_USER_INPUT", "{seen}");
    assert!(limits_refused["text"].as_str().unwrap().contains("two limits for feature \"chat\" per day"), "{seen}");
    assert_eq!(seen["limitsSaved"]["text"], "Spend limits saved.", "{seen}");
    assert_eq!(seen["limitFocus"], "limit-feature-0", "a new limit takes the keyboard: {seen}");
    // What the page shows after the spend is what the API says.
    let api_limits: Vec<Value> = later["spendLimits"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            json!({
                "limit": format!("{}:{}", l["feature"].as_str().unwrap_or("*"), l["period"].as_str().unwrap()),
                "max": l["max"], "used": l["used"], "remaining": l["remaining"], "exceeded": l["exceeded"].to_string(),
            })
        })
        .collect();
    assert_eq!(api_limits.len(), 3, "{later}");
    assert_eq!(seen["limitsLater"], json!(api_limits), "{seen}");
    assert_eq!(seen["limitsLater"][0], json!({ "limit": "chat:DAY", "max": "30", "used": "5", "remaining": "25", "exceeded": "false" }));
    assert_eq!(seen["perCharge"], later["spendLimits"]["maxPerCharge"], "{seen}");
    assert_eq!(later["spendLimits"]["maxPerCharge"], "10");
    // The failed payment counted, as the API says.
    let auto_later = &later["autoTopUp"];
    assert_eq!(auto_later["failuresInARow"], 1, "{later}");
    assert_eq!(seen["autoLater"]["failures"], format!("1 of {}", auto_later["maxFailures"]), "{seen}");
    assert_eq!(seen["autoLater"]["bought"], format!("{} of 500", auto_later["boughtThisMonth"].as_str().unwrap()), "{seen} {later}");
    assert_eq!(seen["autoLater"]["pending"], auto_later["pendingPurchase"]["id"], "{seen} {later}");
    assert_eq!(
        seen["formLater"],
        json!({ "enabled": true, "threshold": "250", "amount": "100", "cap": "500", "limits": 3 }),
        "the form holds the saved setting"
    );

    // The gift: the lost answer, the retry under the same key, one gift given.
    assert_eq!(seen["giftLost"]["code"], "NETWORK", "{seen}");
    assert!(seen["giftLost"]["text"].as_str().unwrap().ends_with("Send again: it will not be sent twice."), "{seen}");
    assert_eq!(seen["giftRetried"]["text"], "Sent 25 credits to bob. You have 170 credits left.", "{seen}");
    assert_eq!(seen["giftFormCleared"], true);
    let keys = seen["giftKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{seen}");
    assert_eq!(keys[0], keys[1], "the retry sent the same key: {seen}");
    assert_ne!(keys[1], keys[2], "a new gift, a new key: {seen}");
    let received = ok(&app, &app.service, GIFTS_OF, json!({ "a": "bob" })).await;
    assert_eq!(
        received["account"]["history"]["nodes"],
        json!([{ "kind": "GIFT_RECEIVED", "amount": "25", "reason": "Happy birthday <b>Bob</b>", "counterparty": "alice" }]),
        "given once: {received}"
    );
    assert_eq!(seen["giftNotFound"]["code"], "NOT_FOUND", "{seen}");
    assert!(seen["giftNotFound"]["text"].as_str().unwrap().starts_with("Not found: No account \"nobody-here\""), "{seen}");
    assert_eq!(seen["giftNotFound"]["invalid"], json!(["gift-to"]), "{seen}");
}

/// Without `[gifts]` the Settings page has no form to send credits.
async fn settings_without_gifts_has_no_gift_form(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    app.create_account("carol").await;
    let link = portal_link(&app, "carol").await;
    let env = [("URL", link.as_str()), ("MODE", "nogifts")];
    let Some(script) = BrowserScript::start("portal-settings.mjs", &app.address, &env).await else {
        return;
    };
    let seen = script.finish().await;
    assert_eq!((&seen["foreign"], &seen["problems"]), (&json!([]), &json!([])), "{seen}");
    assert_eq!(seen["gift"], 0, "{seen}");
    assert_eq!(seen["first"]["enabled"], "false", "{seen}");
    assert_eq!(seen["axe"]["first"], json!([]), "{seen}");
    let program = ok(&app, &app.user("carol"), "{ program { gifts { dailyLimit } } }", json!({})).await;
    assert_eq!(program["program"]["gifts"], Value::Null);
}

on_both!(a_user_changes_settings_and_sends_credits_in_the_portal, settings_without_gifts_has_no_gift_form);

/// Each operation the Settings page sends runs for a user on the whole document.
async fn the_settings_operations_run_for_a_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, GIFTS_PROGRAM).await;
    for id in ["u", "v"] {
        app.create_account(id).await;
    }
    let granted = app.grant("u", "60", "PAID", None, "u-paid").await;
    assert!(granted["errors"].is_null(), "{granted}");
    let user = app.user("u");
    let start = portal_operation(&app, &user, "PortalStart", json!({})).await;
    assert_eq!(start["data"]["program"]["gifts"], json!({ "dailyLimit": "500", "maxPerGift": "300", "dailyCount": 5 }), "{start}");
    for (operation, variables) in [
        ("PortalSettings", json!({})),
        (
            "PortalSetAutoTopUp",
            json!({ "input": { "accountId": "u", "enabled": true, "threshold": "10", "targetBalance": "100", "monthlyCap": "200" } }),
        ),
        (
            "PortalSetSpendLimits",
            json!({ "input": { "accountId": "u", "limits": [{ "feature": null, "period": "MONTH", "max": "90" }], "idempotencyKey": "l-1" } }),
        ),
        ("PortalGiftCredits", json!({ "input": { "toAccount": "v", "amount": "5", "idempotencyKey": "g-1" } })),
    ] {
        let r = portal_operation(&app, &user, operation, variables).await;
        assert!(r["errors"].is_null() && r["data"].is_object(), "{operation}: {r}");
    }
}

on_both!(the_settings_operations_run_for_a_user);
