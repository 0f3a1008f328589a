//! The limit baseline (issue 30): what the database itself can do for the rows the service
//! writes for a spend, when spends come in batches and nothing has to be decided between the
//! statements. It writes exactly those rows, set-based, `--batch-size` spends (32 by default) per
//! transaction, at the same client concurrency as the service's run:
//!
//! - `accounts`: each account's cached balance down by its spends (one row per account; the
//!   accounts are locked in id order first, as the service's batch locks them, so two clients
//!   never wait on each other in a cycle);
//! - `lots`: the first open lot of each account in arkain's order of consumption (the day's free
//!   credits last; free and promotional before paid; then priority, soonest expiry with
//!   never-expiring last, oldest grant, lowest id: `ledger::ConsumptionOrder::compare`), its
//!   `remaining_micros` down by the account's spends and `open` kept true while anything
//!   remains. Every bench account's first lot holds a million credits (bench/harness/src/seed.rs),
//!   so one lot covers every spend of a run, as in the service's run, and a spend is one line;
//! - `journal_entries`: one `spend` entry per spend (amount, `effective_at` and `created_at` at
//!   the transaction's instant, operation `spend`, the spend's idempotency key, feature `bench`,
//!   and `balance_after_micros`, the account's running balance in id order, as
//!   `posting::running_balances` gives it);
//! - `journal_lines`: one line per spend, into the lot taken from, recorded at its entry's
//!   instant (`created_at`, migration 000033: lines are kept by month with their entry, and the
//!   audit checks that each line's entry has the same instant);
//! - `idempotency_keys`: one row per spend under its key, operation `spend`, with a request hash
//!   and a stored outcome of the sizes the service writes (`baseline::REQUEST_HASH`, `OUTCOME`),
//!   kept 30 days (the service's default retention).
//!
//! One statement per table, in that order, in one transaction; `credits audit` at the end of
//! the run checks the books they leave. What the service does besides, and the limit does not:
//! its reads (the idempotency lookup, the lots, the low-credit check's containers), deciding
//! each spend in memory between them, and everything in front of the database (HTTP, tokens,
//! GraphQL, JSON). `--baseline-notify` adds the service's `pg_notify` per account, as it does to
//! the per-spend baseline.
//!
//! PostgreSQL runs it as a pgbench custom script: the accounts are `--batch-size` distinct
//! random ones (pgbench's `permute` with a fresh seed per transaction; all of them `bench-0` for
//! `hot`, where one account row takes the batch's spends at once), and each statement's results
//! ride to the next in `\gset` arrays. SQLite runs it in the harness's process over the
//! service's own connection settings, like the per-spend baseline, each batch one
//! `BEGIN IMMEDIATE` transaction of multi-row statements.

use crate::baseline::{self, OUTCOME, Pgbench, REQUEST_HASH, Script};
use crate::load::{AMOUNT_MICROS, Items, Measured, Pick};
use anyhow::bail;
use chrono::Utc;
use sea_orm::sqlx::{self, AssertSqlSafe};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Spends per transaction by default (`--batch-size`): the batch of the issue's measurement.
pub const BATCH: usize = 32;

/// arkain's order of consumption among one account's open lots, for an `ORDER BY`
/// (`ledger::ConsumptionOrder::compare`): the day's free credits last, the tier (free and
/// promotional, then paid), priority, soonest expiry (never last), oldest grant, lowest id.
/// `expires_at IS NULL` first puts never-expiring lots last on both databases.
const ARKAIN_ORDER: &str = "l.source = 'daily_free', CASE WHEN l.class = 'paid' THEN 1 ELSE 0 END, l.priority, \
     l.expires_at IS NULL, l.expires_at, l.granted_at, l.id";

/// The idempotency keys' retention: the service's default (`idempotency_days`).
const KEY_DAYS: i64 = 30;

/// The pgbench script: `batch` spends per transaction on the accounts `pick` chooses.
pub fn pgbench_script(pick: Pick, batch: usize, notify: bool) -> String {
    let mut script = String::new();
    let accounts: Vec<String> = match pick {
        Pick::Many(n) => {
            // `permute` maps 0..n onto itself, a different way for each seed: distinct accounts
            // (round after round when there are fewer accounts than spends).
            script.push_str("\\set seed random(0, 9223372036854775806)\n");
            for i in 0..batch {
                script.push_str(&format!("\\set a{i} permute({}, {n}, :seed)\n", i % n));
            }
            (0..batch).map(|i| format!(":a{i}")).collect()
        }
        Pick::Hot => vec!["0".to_string(); batch],
        Pick::Account(_) => unreachable!("the baselines spend on bench-<n> accounts; reads have no baseline"),
    };
    let accounts = accounts.join(", ");
    let notify = if notify { ", pg_notify('credits_balance', a.id::text) AS notified" } else { "" };
    // The keys of this transaction's spends: `limit-<random>-<account id>-<j>`, the j-th spend
    // of the account in it; the entries and the key rows make them alike.
    script.push_str(&format!(
        r#"\set r random(0, 9223372036854775806)
BEGIN;
WITH picked AS (
    SELECT 'bench-' || n AS external_id, COUNT(*) AS k FROM unnest(ARRAY[{accounts}]) AS n GROUP BY n
), locked AS MATERIALIZED (
    SELECT a.id, picked.k FROM accounts a JOIN picked ON a.external_id = picked.external_id ORDER BY a.id FOR UPDATE OF a
), moved AS (
    UPDATE accounts a SET balance_micros = a.balance_micros - locked.k * {AMOUNT_MICROS} FROM locked WHERE a.id = locked.id
    RETURNING a.id, a.balance_micros, locked.k{notify}
)
SELECT array_agg(id ORDER BY id) AS ids, array_agg(balance_micros ORDER BY id) AS after, array_agg(k ORDER BY id) AS ks,
       1 / (COALESCE(SUM(k), 0) = {batch})::int AS all_found
FROM moved \gset
WITH per AS (
    SELECT * FROM unnest(':ids'::bigint[], ':ks'::bigint[]) AS p(account_id, k)
), first AS (
    SELECT per.account_id, f.id FROM per, LATERAL (SELECT l.id FROM lots l WHERE l.account_id = per.account_id AND l.open ORDER BY {ARKAIN_ORDER} LIMIT 1) f
), moved AS (
    UPDATE lots l SET remaining_micros = l.remaining_micros - per.k * {AMOUNT_MICROS}, open = l.remaining_micros - per.k * {AMOUNT_MICROS} <> 0
    FROM first JOIN per ON per.account_id = first.account_id
    WHERE l.id = first.id AND l.remaining_micros >= per.k * {AMOUNT_MICROS}
    RETURNING l.account_id, l.id
)
SELECT array_agg(id ORDER BY account_id) AS lot_ids, 1 / (COUNT(*) = cardinality(':ids'::bigint[]))::int AS all_taken FROM moved \gset
WITH per AS (
    SELECT * FROM unnest(':ids'::bigint[], ':after'::bigint[], ':ks'::bigint[]) AS p(account_id, after, k)
), made AS (
    INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, feature, balance_after_micros)
    SELECT account_id, 'spend', -{AMOUNT_MICROS}, now(), now(), 'spend', 'limit-' || :r || '-' || account_id || '-' || j, 'bench',
           after + (k - j) * {AMOUNT_MICROS}
    FROM per, generate_series(1, k) AS j ORDER BY account_id, j
    RETURNING id, account_id
)
SELECT array_agg(id ORDER BY id) AS entry_ids, array_agg(account_id ORDER BY id) AS entry_accounts FROM made \gset
INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at)
SELECT e.entry_id, l.lot_id, -{AMOUNT_MICROS}, now()
FROM unnest(':entry_ids'::bigint[], ':entry_accounts'::bigint[]) AS e(entry_id, account_id)
JOIN unnest(':ids'::bigint[], ':lot_ids'::bigint[]) AS l(account_id, lot_id) ON l.account_id = e.account_id;
INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at)
SELECT account_id, 'spend', 'limit-' || :r || '-' || account_id || '-' || j, '{REQUEST_HASH}', '{OUTCOME}', now(), now() + interval '{KEY_DAYS} days'
FROM unnest(':ids'::bigint[], ':ks'::bigint[]) AS p(account_id, k), generate_series(1, k) AS j;
COMMIT;
"#
    ));
    script
}

/// PostgreSQL: the script under pgbench, `clients` clients, `batch` spends per transaction.
pub async fn pgbench(
    bench: &Pgbench<'_>,
    url: &str,
    pick: Pick,
    batch: usize,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Measured> {
    let script = Script {
        tag: format!("limit-{}-{clients}", baseline::pick_label(pick)),
        text: pgbench_script(pick, batch, bench.notify),
        spends: batch,
    };
    baseline::run_pgbench(bench, url, &script, clients, warmup, seconds).await
}

/// SQLite: `clients` tasks over the service's own connection settings and pool size (8), each
/// committing `batch` spends per transaction.
pub async fn sqlite_loop(
    url: &str,
    pick: Pick,
    batch: usize,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Measured> {
    let db = credits::db::connect(url, clients.min(8) as u32).await?;
    let pool = db.get_sqlite_connection_pool().clone();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await?;
    if journal != "wal" {
        bail!("the SQLite limit baseline expected WAL, found {journal}");
    }
    let total = crate::load::closed_loop_items(clients, warmup, seconds, "limit-", move |key| {
        let pool = pool.clone();
        let accounts = pick.accounts(&mut rand::rng(), batch);
        async move {
            match sqlite_batch(&pool, &accounts, &key).await {
                Ok(()) => Items { ok: accounts.len() as u64, ..Items::default() },
                Err(e) => Items::all_failed(accounts.len(), format!("sqlite: {e}")),
            }
        }
    })
    .await;
    db.close().await?;
    Ok(total)
}

/// `?, ?, ...` rows of `columns` placeholders each.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// One transaction of spends, one of `accounts` each (an account may come more than once), the
/// j-th spend of an account keyed `{key}-{account id}-{j}`. Its statements are made of constants
/// and placeholders only (`AssertSqlSafe`): every value is bound.
async fn sqlite_batch(pool: &sqlx::SqlitePool, accounts: &[String], key: &str) -> Result<(), sqlx::Error> {
    let mut spends: BTreeMap<&str, i64> = BTreeMap::new();
    for account in accounts {
        *spends.entry(account.as_str()).or_default() += 1;
    }
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let result = async {
        // To the microsecond, as the service records instants; the entries and their lines get
        // the same one.
        let now = credits::ledger::time::truncate(Utc::now());
        let sql = format!(
            "WITH v(external_id, delta) AS (VALUES {}) UPDATE accounts SET balance_micros = balance_micros - v.delta FROM v \
             WHERE accounts.external_id = v.external_id RETURNING id, external_id, balance_micros",
            placeholders(spends.len(), 2)
        );
        let mut query = sqlx::query_as::<_, (i64, String, i64)>(AssertSqlSafe(sql));
        for (account, k) in &spends {
            query = query.bind(*account).bind(k * AMOUNT_MICROS);
        }
        let moved = query.fetch_all(&mut *conn).await?;
        if moved.len() != spends.len() {
            return Err(sqlx::Error::Protocol("a bench account of the limit baseline is missing".into()));
        }
        // By account id: its spends in the batch, and its balance after them.
        let per_account: BTreeMap<i64, (i64, i64)> =
            moved.into_iter().map(|(id, external_id, after)| (id, (spends[external_id.as_str()], after))).collect();

        let sql = format!(
            "WITH v(account_id, take) AS (VALUES {}), \
             first(lot_id, take) AS (SELECT (SELECT l.id FROM lots l WHERE l.account_id = v.account_id AND l.\"open\" \
                                             ORDER BY {ARKAIN_ORDER} LIMIT 1), v.take FROM v) \
             UPDATE lots SET remaining_micros = remaining_micros - first.take, \"open\" = (remaining_micros - first.take <> 0) \
             FROM first WHERE lots.id = first.lot_id AND lots.remaining_micros >= first.take RETURNING account_id, id",
            placeholders(per_account.len(), 2)
        );
        let mut query = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
        for (account_id, (k, _)) in &per_account {
            query = query.bind(*account_id).bind(k * AMOUNT_MICROS);
        }
        let lots: HashMap<i64, i64> = query.fetch_all(&mut *conn).await?.into_iter().collect();
        if lots.len() != per_account.len() {
            return Err(sqlx::Error::Protocol("a bench account's first lot could not cover its spends".into()));
        }

        // Each spend: (account id, key, balance after it), an account's spends in order.
        let mut entries = Vec::with_capacity(accounts.len());
        for (account_id, (k, after)) in &per_account {
            for j in 1..=*k {
                entries.push((*account_id, format!("{key}-{account_id}-{j}"), after + (k - j) * AMOUNT_MICROS));
            }
        }
        let sql = format!(
            "INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, \
             feature, balance_after_micros) VALUES {} RETURNING id, idempotency_key",
            vec!["(?, 'spend', ?, ?, ?, 'spend', ?, 'bench', ?)"; entries.len()].join(", ")
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
        for (account_id, key, after) in &entries {
            query = query.bind(*account_id).bind(-AMOUNT_MICROS).bind(now).bind(now).bind(key.as_str()).bind(*after);
        }
        let entry_ids: HashMap<String, i64> = query.fetch_all(&mut *conn).await?.into_iter().map(|(id, key)| (key, id)).collect();

        let sql =
            format!("INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) VALUES {}", placeholders(entries.len(), 4));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (account_id, key, _) in &entries {
            let entry_id = entry_ids.get(key).copied().ok_or_else(|| sqlx::Error::Protocol(format!("no entry came back for {key}")))?;
            query = query.bind(entry_id).bind(lots[account_id]).bind(-AMOUNT_MICROS).bind(now);
        }
        query.execute(&mut *conn).await?;

        let sql = format!(
            "INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at) VALUES {}",
            vec!["(?, 'spend', ?, ?, ?, ?, ?)"; entries.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        let expires_at = now + chrono::Duration::days(KEY_DAYS);
        for (account_id, key, _) in &entries {
            query = query.bind(*account_id).bind(key.as_str()).bind(REQUEST_HASH).bind(OUTCOME).bind(now).bind(expires_at);
        }
        query.execute(&mut *conn).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    baseline::finish(&mut conn, result).await
}
