//! The sharded design of docs/scaling.md ("Past one database"), simulated at small scale: two
//! PostgreSQL databases, each a whole ledger served by its own app, accounts placed by a hash
//! of their id, and credits moved across them in keyed steps through the real API.
//!
//! A transfer from A (on shard a) to B (on shard b):
//! 1. **debit** on shard a: a spend of A keyed `transfer:{id}`, whose metadata names the
//!    transfer and its recipient. The journal entry is the transfer's durable record: debit and
//!    record are one entry of one transaction, so there is no moment with one and not the other;
//! 2. **credit** on shard b: a grant to B keyed `transfer:{id}` (once, whatever the retries);
//! 3. a credit refused (B is not on shard b) is answered by a **compensation** on shard a: a grant
//!    back to A keyed `transfer:{id}:back`.
//!
//! A coordinator may stop after any step. Recovery reads each shard's journal for debits
//! recorded as transfers and runs step 2 (or 3) again with the same keys, any number of times,
//! from any number of processes. What is checked: each shard audits clean at every point (a
//! transfer in flight is a spend on one side and nothing yet on the other); credits in flight
//! are exactly the debits without their credit; after recovery none are, every transfer was
//! credited (or given back) exactly once, and the sum of all balances over both shards is what
//! was granted.
//!
//! What the simulation leaves out, and the service would add: entry kinds of their own
//! (`transfer_out`, `transfer_in`) rather than a spend and a grant, a recovery worker in the
//! service instead of the test's, and the router in front of the API (here the test picks the
//! shard).

use crate::support::{Backend, TestApp, error_code};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::sync::Arc;

const SPEND: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $m: Metadata) {
    spendCredits(input: {accountId: $a, amount: $amt, idempotencyKey: $k, feature: \"transfer\", metadata: $m}) { sequence } }";
const GRANT: &str = "mutation($a: ID!, $amt: CreditAmount!, $k: String!, $m: Metadata) {
    grantCredits(input: {accountId: $a, amount: $amt, class: PAID, idempotencyKey: $k, metadata: $m}) { lotId } }";

/// The shard of an account: FNV-1a of its id, modulo the shards.
fn shard_of(account: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in account.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

struct Shards {
    apps: Vec<TestApp>,
}

/// How far a coordinator got before it stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    AfterDebit,
    Never,
}

impl Shards {
    fn of(&self, account: &str) -> &TestApp {
        &self.apps[shard_of(account, self.apps.len())]
    }

    /// Step 1; false when the payer's shard refused the debit (nothing moved).
    async fn debit(&self, id: &str, from: &str, to: &str, amount: &str) -> bool {
        let app = self.of(from);
        let metadata = json!({ "transfer": id, "to": to, "amount": amount });
        let answer = app.gql(&app.service, SPEND, json!({ "a": from, "amt": amount, "k": format!("transfer:{id}"), "m": metadata })).await;
        if answer["errors"].is_null() {
            return true;
        }
        assert_eq!(error_code(&answer), "INSUFFICIENT_CREDITS", "{answer}");
        false
    }

    /// Step 2, or 3 if the payee's shard refuses it. Safe to repeat.
    async fn credit(&self, id: &str, from: &str, to: &str, amount: &str) {
        let app = self.of(to);
        let metadata = json!({ "transfer": id, "from": from });
        let answer = app.gql(&app.admin, GRANT, json!({ "a": to, "amt": amount, "k": format!("transfer:{id}"), "m": metadata })).await;
        if answer["errors"].is_null() {
            return;
        }
        assert_eq!(error_code(&answer), "NOT_FOUND", "{answer}");
        let back = self.of(from);
        let metadata = json!({ "transfer": id, "returned": "true" });
        let answer =
            back.gql(&back.admin, GRANT, json!({ "a": from, "amt": amount, "k": format!("transfer:{id}:back"), "m": metadata })).await;
        assert!(answer["errors"].is_null(), "{answer}");
    }

    async fn transfer(&self, id: &str, from: &str, to: &str, amount: &str, stop: Stop) {
        if self.debit(id, from, to, amount).await && stop == Stop::Never {
            self.credit(id, from, to, amount).await;
        }
    }

    /// Every debit recorded as a transfer, on every shard: (id, from, to, amount).
    async fn debits(&self) -> Vec<(String, String, String, String)> {
        let mut found = Vec::new();
        for app in &self.apps {
            let sql = "SELECT a.external_id, je.metadata FROM journal_entries_all je JOIN accounts a ON a.id = je.account_id \
                       WHERE je.kind = 'spend' AND je.feature = 'transfer'";
            for row in app.ledger.db.query_all_raw(Statement::from_string(app.ledger.db.get_database_backend(), sql)).await.unwrap() {
                let from: String = row.try_get_by_index(0).unwrap();
                let metadata: Value = serde_json::from_str(&row.try_get_by_index::<String>(1).unwrap()).unwrap();
                let field = |name: &str| metadata[name].as_str().unwrap().to_string();
                found.push((field("transfer"), from, field("to"), field("amount")));
            }
        }
        found
    }

    /// The recovery worker: steps 2 and 3 again for every debit.
    async fn recover(&self) {
        for (id, from, to, amount) in self.debits().await {
            self.credit(&id, &from, &to, &amount).await;
        }
    }

    /// Grants that credit or give back a transfer, by transfer id, over both shards.
    async fn credits_by_transfer(&self) -> std::collections::HashMap<String, i64> {
        let mut counts = std::collections::HashMap::new();
        for app in &self.apps {
            let sql = "SELECT metadata FROM journal_entries_all WHERE kind = 'grant' AND idempotency_key LIKE 'transfer:%'";
            for row in app.ledger.db.query_all_raw(Statement::from_string(app.ledger.db.get_database_backend(), sql)).await.unwrap() {
                let metadata: Value = serde_json::from_str(&row.try_get_by_index::<String>(0).unwrap()).unwrap();
                *counts.entry(metadata["transfer"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
        counts
    }

    /// The sum of every account's balance over both shards, in micro-credits.
    async fn total_micros(&self) -> i64 {
        let mut total = 0;
        for app in &self.apps {
            let row = app
                .ledger
                .db
                .query_one_raw(Statement::from_string(
                    app.ledger.db.get_database_backend(),
                    "SELECT CAST(COALESCE(SUM(balance_micros), 0) AS BIGINT) FROM accounts",
                ))
                .await
                .unwrap()
                .unwrap();
            total += row.try_get_by_index::<i64>(0).unwrap();
        }
        total
    }

    async fn assert_each_audits_clean(&self) {
        for app in &self.apps {
            app.assert_audit_clean().await;
        }
    }
}

fn micros(amount: &str) -> i64 {
    credits::ledger::Credits::parse_str(amount).unwrap().micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_across_two_databases_land_exactly_once() {
    let shards = Arc::new(Shards { apps: vec![TestApp::spawn(Backend::Postgres).await, TestApp::spawn(Backend::Postgres).await] });
    // Four accounts, two on each shard by the hash; each starts with 100.
    let people: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let mut placed: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for person in &people {
        let shard = shard_of(person, 2);
        if placed[shard].len() < 2 {
            placed[shard].push(person.clone());
        }
    }
    let accounts: Vec<String> = placed.concat();
    assert_eq!(accounts.len(), 4, "the hash places accounts on both shards: {placed:?}");
    for account in &accounts {
        let app = shards.of(account);
        app.create_account(account).await;
        assert!(app.grant(account, "100", "PAID", None, &format!("start-{account}")).await["errors"].is_null());
    }
    let start = shards.total_micros().await;
    assert_eq!(start, 400_000_000);

    // Transfers in both directions, at once: every pair, some to an account no shard holds
    // (given back), and every third stopped after its debit, as if its coordinator died.
    let mut plans = Vec::new();
    for round in 0..3 {
        for (i, from) in accounts.iter().enumerate() {
            for (j, to) in accounts.iter().enumerate() {
                if i == j {
                    continue;
                }
                let n = plans.len();
                let to = if n % 7 == 0 { format!("ghost-{n}") } else { to.clone() };
                let amount = format!("{}.{}", 1 + (n % 5), round);
                let stop = if n % 3 == 0 { Stop::AfterDebit } else { Stop::Never };
                plans.push((format!("t{n}"), from.clone(), to, amount, stop));
            }
        }
    }
    let tasks: Vec<_> = plans
        .iter()
        .cloned()
        .map(|(id, from, to, amount, stop)| {
            let shards = shards.clone();
            tokio::spawn(async move { shards.transfer(&id, &from, &to, &amount, stop).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    // Coordinators stopped: each shard is whole on its own, and what is missing from the total
    // is exactly the debits not credited yet.
    shards.assert_each_audits_clean().await;
    let debits = shards.debits().await;
    assert!(debits.len() > plans.len() / 2, "most transfers were debited: {} of {}", debits.len(), plans.len());
    let credited = shards.credits_by_transfer().await;
    let in_flight: i64 = debits.iter().filter(|(id, ..)| !credited.contains_key(id)).map(|(.., amount)| micros(amount)).sum();
    assert!(in_flight > 0, "some transfers stopped after their debit");
    assert_eq!(shards.total_micros().await + in_flight, start, "credits in flight are exactly the debits without their credit");

    // Recovery, twice at once and once more: each transfer ends credited or given back, once.
    let (a, b) = (shards.clone(), shards.clone());
    let (first, second) = tokio::join!(tokio::spawn(async move { a.recover().await }), tokio::spawn(async move { b.recover().await }));
    first.unwrap();
    second.unwrap();
    shards.recover().await;
    let credited = shards.credits_by_transfer().await;
    for (id, ..) in &debits {
        assert_eq!(credited.get(id), Some(&1), "transfer {id} credited or given back exactly once");
    }
    assert_eq!(credited.len(), debits.len(), "no credit without its debit");
    assert_eq!(shards.total_micros().await, start, "over both databases, nothing was made or lost");
    shards.assert_each_audits_clean().await;
}
