//! Every connection through the API: walked forward (`first`/`after`) and backward
//! (`last`/`before`) in small pages and compared with the whole list, `pageInfo` at both ends and
//! in between, `totalCount`, filters kept both ways, and the cursors a list refuses: another
//! list's, an old raw number, garbage.

use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use serde_json::{Value, json};

const ARGS_DECLARED: &str = "$first: Int, $after: String, $last: Int, $before: String";
const ARGS: &str = "first: $first, after: $after, last: $last, before: $before";
const PAGE_INFO: &str = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount";

/// One connection of the caller's account: the document that reads a page of it, and where the
/// connection is in the answer.
struct Listed {
    name: &'static str,
    query: String,
    path: &'static str,
}

impl Listed {
    /// `field` is the connection under `me`, with `ARGS` where the paging arguments go and `SEL`
    /// where its selection goes (`usage { aiLogs(ARGS) { SEL } }`); `variables` declares its
    /// other variables; `node` selects the node's fields.
    fn new(name: &'static str, variables: &str, field: &str, node: &str, path: &'static str) -> Listed {
        let selection = format!("edges {{ cursor node {{ {node} }} }} {PAGE_INFO}");
        let field = field.replace("ARGS", ARGS).replace("SEL", &selection);
        Listed { name, query: format!("query({ARGS_DECLARED}{variables}) {{ me {{ {field} }} }}"), path }
    }
}

type Edges = Vec<(String, Value)>;

fn edges(connection: &Value) -> Edges {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| (e["cursor"].as_str().expect("a cursor").to_string(), e["node"].clone()))
        .collect()
}

async fn page(app: &TestApp, token: &str, list: &Listed, args: Value) -> Value {
    let r = app.gql(token, &list.query, args.clone()).await;
    assert!(r["errors"].is_null(), "{} {args}: {r}", list.name);
    let connection = r.pointer(list.path).unwrap_or_else(|| panic!("{} at {}: {r}", list.name, list.path)).clone();
    // pageInfo's cursors are the page's first and last edges'.
    let found = edges(&connection);
    let info = &connection["pageInfo"];
    assert_eq!(info["startCursor"], found.first().map(|(c, _)| json!(c)).unwrap_or(Value::Null), "{} {args}", list.name);
    assert_eq!(info["endCursor"], found.last().map(|(c, _)| json!(c)).unwrap_or(Value::Null), "{} {args}", list.name);
    connection
}

/// The message of a `BAD_USER_INPUT` refusal; nothing else.
async fn refused(app: &TestApp, token: &str, list: &Listed, args: Value) -> String {
    let r = app.gql(token, &list.query, args.clone()).await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT", "{} {args}: {r}", list.name);
    r["errors"][0]["message"].as_str().unwrap().to_string()
}

fn flags(connection: &Value) -> (bool, bool) {
    let info = &connection["pageInfo"];
    (info["hasPreviousPage"].as_bool().unwrap(), info["hasNextPage"].as_bool().unwrap())
}

/// Walks `list` both ways with pages of 1, 2 and 3 and checks each page against the whole list
/// (read in one page of 100), then the edges of the paging arguments. Returns the whole list.
async fn walk(app: &TestApp, token: &str, list: &Listed, extra: Value) -> Edges {
    let with = |args: Value| {
        let mut vars = extra.clone();
        vars.as_object_mut().unwrap().extend(args.as_object().unwrap().clone());
        vars
    };
    let whole = page(app, token, list, with(json!({ "first": 100 }))).await;
    let all = edges(&whole);
    let n = all.len();
    assert!(n >= 5, "{}: a list long enough to page: {whole}", list.name);
    assert_eq!(whole["totalCount"], json!(n), "{}", list.name);
    assert_eq!(flags(&whole), (false, false), "{}: the whole list", list.name);
    let distinct: std::collections::HashSet<&String> = all.iter().map(|(c, _)| c).collect();
    assert_eq!(distinct.len(), n, "{}: one cursor per edge", list.name);
    // Without `first` or `last`, a page holds the first 20.
    let default = page(app, token, list, with(json!({}))).await;
    assert_eq!(edges(&default), all[..n.min(20)].to_vec(), "{}", list.name);
    assert_eq!(flags(&default), (false, n > 20), "{}", list.name);

    for size in [1usize, 2, 3] {
        // Forward: `after` the last page's end cursor until there is no next page.
        let (mut seen, mut after) = (Edges::new(), Value::Null);
        loop {
            let p = page(app, token, list, with(json!({ "first": size, "after": after }))).await;
            let got = edges(&p);
            assert!(!got.is_empty() && got.len() <= size, "{} first {size}: {p}", list.name);
            assert_eq!(flags(&p).0, !seen.is_empty(), "{} first {size}: hasPreviousPage after {} edges", list.name, seen.len());
            seen.extend(got);
            assert_eq!(flags(&p).1, seen.len() < n, "{} first {size}: hasNextPage after {} edges", list.name, seen.len());
            assert_eq!(p["totalCount"], json!(n), "{}: totalCount is the list's, not the page's", list.name);
            if !flags(&p).1 {
                break;
            }
            after = p["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen, all, "{} forward in pages of {size}", list.name);

        // Backward: `before` the last page's start cursor until there is no previous page. Each
        // page comes in the list's order, so prepending rebuilds the list.
        let (mut seen, mut before) = (Edges::new(), Value::Null);
        loop {
            let p = page(app, token, list, with(json!({ "last": size, "before": before }))).await;
            let mut got = edges(&p);
            assert!(!got.is_empty() && got.len() <= size, "{} last {size}: {p}", list.name);
            assert_eq!(flags(&p).1, !seen.is_empty(), "{} last {size}: hasNextPage with {} edges after", list.name, seen.len());
            got.extend(seen);
            seen = got;
            assert_eq!(flags(&p).0, seen.len() < n, "{} last {size}: hasPreviousPage with {} edges read", list.name, seen.len());
            if !flags(&p).0 {
                break;
            }
            before = p["pageInfo"]["startCursor"].clone();
        }
        assert_eq!(seen, all, "{} backward in pages of {size}", list.name);
    }

    let cursor = |i: usize| json!(all[i].0);
    // Past either end: an empty page, and the flag toward the list says it is there.
    let past_end = page(app, token, list, with(json!({ "first": 2, "after": cursor(n - 1) }))).await;
    assert_eq!((edges(&past_end).len(), flags(&past_end)), (0, (true, false)), "{}", list.name);
    let before_start = page(app, token, list, with(json!({ "last": 2, "before": cursor(0) }))).await;
    assert_eq!((edges(&before_start).len(), flags(&before_start)), (0, (false, true)), "{}", list.name);
    // `after` and `before` together bound a range; the flags of the side read stay within it.
    let range = page(app, token, list, with(json!({ "first": 100, "after": cursor(0), "before": cursor(4) }))).await;
    assert_eq!(edges(&range), all[1..4].to_vec(), "{}", list.name);
    assert_eq!(flags(&range), (true, false), "{}", list.name);
    let range = page(app, token, list, with(json!({ "last": 2, "after": cursor(0), "before": cursor(4) }))).await;
    assert_eq!(edges(&range), all[2..4].to_vec(), "{}", list.name);
    assert_eq!(flags(&range), (true, true), "{}", list.name);
    // `before` alone goes back from it, 20 at most.
    let back = page(app, token, list, with(json!({ "before": cursor(n - 1) }))).await;
    assert_eq!(edges(&back), all[(n - 1).saturating_sub(20)..n - 1].to_vec(), "{}", list.name);
    assert_eq!(flags(&back), (n - 1 > 20, true), "{}", list.name);

    // Refused, each with BAD_USER_INPUT: first with last, sizes out of range, bad cursors.
    let both = refused(app, token, list, with(json!({ "first": 2, "last": 2 }))).await;
    assert!(both.contains("`first` and `last`"), "{both}");
    for args in [json!({ "first": 0 }), json!({ "first": 101 }), json!({ "last": 0 }), json!({ "last": 101 }), json!({ "last": -1 })] {
        refused(app, token, list, with(args)).await;
    }
    for argument in ["after", "before"] {
        // Today's cursor format before opaque cursors: the row id in decimal.
        let old = refused(app, token, list, with(json!({ argument: "1" }))).await;
        assert!(old.contains("old format") && old.contains(argument), "{}: {old}", list.name);
        for garbage in ["not-a-cursor", "////", "", "djE6bG90czp4", &"A".repeat(10_000)] {
            let message = refused(app, token, list, with(json!({ argument: garbage }))).await;
            assert!(message.contains(argument), "{}: {message}", list.name);
        }
    }
    all
}

/// The numbers of `field` in the nodes, which must be strictly decreasing (newest first).
fn newest_first(list: &Edges, field: &str) -> Vec<i64> {
    let ids: Vec<i64> = list.iter().map(|(_, node)| node[field].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first by {field}: {ids:?}");
    ids
}

async fn connections_page_both_ways_with_opaque_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_account("p").await;
    let user = app.user("p");
    for i in 0..7 {
        assert!(app.grant("p", "10", "PAID", None, &format!("g-{i}")).await["errors"].is_null());
    }
    // The first spend empties one lot whole, which closes it.
    for i in 0..6 {
        let amount = if i == 0 { "10" } else { "1" };
        assert!(app.spend("p", amount, &format!("s-{i}")).await["errors"].is_null());
    }
    // Seven purchases, three of them paid.
    for i in 0..7 {
        let r = app
            .gql(
                &user,
                "mutation($k: String!) { purchaseCredits(input: {accountId: \"p\", credits: \"75\", idempotencyKey: $k}) { id } }",
                json!({ "k": format!("p-{i}") }),
            )
            .await;
        let id = r["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
        if i % 2 == 0 && i < 6 {
            let paid = app
                .gql(
                    &app.service,
                    "mutation($id: ID!, $r: String!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $r}) { status } }",
                    json!({ "id": id, "r": format!("pay-{i}") }),
                )
                .await;
            assert_eq!(paid["data"]["confirmPurchase"]["status"], json!("PAID"), "{paid}");
        }
    }
    // Seven AI uses this month.
    for i in 0..7 {
        let r = app
            .gql(
                &app.service,
                "mutation($k: String!) { recordUsage(input: {accountId: \"p\", idempotencyKey: $k, ai: {kind: SNAP}}) { __typename } }",
                json!({ "k": format!("ai-{i}") }),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }

    let lots = Listed::new("lots", ", $closed: Boolean!", "lots(ARGS, includeClosed: $closed) { SEL }", "id remaining", "/data/me/lots");
    let history =
        Listed::new("history", ", $filter: HistoryFilter", "history(ARGS, filter: $filter) { SEL }", "sequence kind", "/data/me/history");
    let purchases = Listed::new(
        "purchases",
        ", $pending: Boolean!",
        "purchases(ARGS, includePending: $pending) { SEL }",
        "id status",
        "/data/me/purchases",
    );
    let ai_logs = Listed::new("aiLogs", "", "usage { aiLogs(ARGS) { SEL } }", "kind amount", "/data/me/usage/aiLogs");

    let all_lots = walk(&app, &user, &lots, json!({ "closed": true })).await;
    let lot_ids = newest_first(&all_lots, "id");
    assert!(lot_ids.len() >= 10, "7 grants and 3 paid purchases: {lot_ids:?}");
    let open_lots = page(&app, &user, &lots, json!({ "closed": false, "first": 100 })).await;
    let open = edges(&open_lots).len();
    assert_eq!(open_lots["totalCount"], json!(open), "totalCount follows includeClosed");
    assert!(open < lot_ids.len(), "the emptied lot is closed: {open} of {}", lot_ids.len());

    let journal = walk(&app, &user, &history, json!({ "filter": null })).await;
    newest_first(&journal, "sequence");
    // A filter holds both ways, and totalCount counts with it.
    let grants = walk(&app, &user, &history, json!({ "filter": { "kinds": ["GRANT"] } })).await;
    assert!(grants.iter().all(|(_, node)| node["kind"] == json!("GRANT")), "{grants:?}");
    assert!(grants.len() >= 7 && grants.len() < journal.len(), "{} of {}", grants.len(), journal.len());
    let spends = page(&app, &user, &history, json!({ "filter": { "kinds": ["SPEND"], "feature": "chat" }, "first": 2 })).await;
    assert_eq!(spends["totalCount"], json!(6), "{spends}");

    let bought = walk(&app, &user, &purchases, json!({ "pending": true })).await;
    assert_eq!(newest_first(&bought, "id").len(), 7);
    let paid = page(&app, &user, &purchases, json!({ "pending": false, "first": 1 })).await;
    assert_eq!((paid["totalCount"].clone(), flags(&paid)), (json!(3), (false, true)), "{paid}");

    let uses = walk(&app, &user, &ai_logs, json!({})).await;
    assert_eq!(uses.len(), 7);

    // A cursor of one list is refused by every other, saying whose it is.
    let samples = [
        (&lots, json!({ "closed": true }), &all_lots),
        (&history, json!({ "filter": null }), &journal),
        (&purchases, json!({ "pending": true }), &bought),
        (&ai_logs, json!({}), &uses),
    ];
    for (from, _, edges_of) in &samples {
        for (to, extra, _) in &samples {
            if from.name == to.name {
                continue;
            }
            let mut args = extra.clone();
            args["after"] = json!(edges_of[0].0);
            let message = refused(&app, &user, to, args).await;
            assert!(message.contains(&format!("cursor of `{}`, not of `{}`", from.name, to.name)), "{message}");
        }
    }
    // The row ids behind the cursors, in the old raw form, are refused too.
    let message = refused(&app, &user, &lots, json!({ "closed": true, "after": lot_ids[0].to_string() })).await;
    assert!(message.contains("old format"), "{message}");
}

on_both!(connections_page_both_ways_with_opaque_cursors);

/// `account.jobs` (archipelag): jobs rejected for want of a provider are still listed.
async fn market_jobs_page_both_ways(backend: Backend) {
    let app = TestApp::spawn_with(backend, "archipelag").await;
    app.create_account("c").await;
    let verified =
        app.gql(&app.service, "mutation { setIdentityVerified(accountId: \"c\", verified: true) { identityVerified } }", json!({})).await;
    assert!(verified["errors"].is_null(), "{verified}");
    let user = app.user("c");
    let jobs = Listed::new("jobs", "", "jobs(ARGS) { SEL }", "jobId status", "/data/me/jobs");
    let empty = page(&app, &user, &jobs, json!({})).await;
    assert_eq!((empty["edges"].clone(), empty["totalCount"].clone(), flags(&empty)), (json!([]), json!(0), (false, false)), "{empty}");

    let inputs: Vec<Value> = (0..7).map(|i| json!({ "input": format!("job {i}") })).collect();
    let r = app
        .gql(
            &user,
            "mutation($i: [JobInputItem!]!) { submitJob(input: {accountId: \"c\", workload: \"llm-chat\", inputs: $i, idempotencyKey: \"k\"}) { status code } }",
            json!({ "i": inputs }),
        )
        .await;
    assert_eq!(r["data"]["submitJob"][0], json!({ "status": "REJECTED", "code": "NO_PROVIDER" }), "{r}");
    let all = walk(&app, &user, &jobs, json!({})).await;
    assert_eq!(newest_first(&all, "jobId").len(), 7);
    let lots = Listed::new("lots", "", "lots(ARGS) { SEL }", "id", "/data/me/lots");
    let message = refused(&app, &user, &lots, json!({ "before": all[0].0 })).await;
    assert!(message.contains("cursor of `jobs`, not of `lots`"), "{message}");
}

on_both!(market_jobs_page_both_ways);
