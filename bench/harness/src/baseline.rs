//! The baselines: hand-written SQL doing the work of one spend, in one transaction, with no
//! server in between:
//!
//! 1. lock the account and move its cached balance (`UPDATE accounts ... RETURNING id`);
//! 2. insert the idempotency row (its unique index is what makes a key single-use);
//! 3. read the account's open lots in the program's order (arkain: free and promotional by
//!    soonest expiry, then paid), with their row lock on PostgreSQL, and take the amount from
//!    them in that order;
//! 4. append one journal entry (with the account's balance after it, and the spend's key) and
//!    one journal line per lot taken (recorded at the entry's instant: the lines are kept by
//!    month with their entry since migration 000033, and the audit checks that they match).
//!
//! PostgreSQL runs it as a pgbench custom script (3 and 4 in one statement); SQLite as a tight
//! in-process loop over the service's own connection settings (`credits::db::connect`: WAL,
//! the same `synchronous` level, busy timeout, foreign keys) with `BEGIN IMMEDIATE`.

use crate::load::{AMOUNT_MICROS, Items, Measured, Pick};
use anyhow::{Context, bail};
use chrono::Utc;
use sea_orm::sqlx;
use std::path::Path;
use std::time::Duration;

/// A request hash and a stored outcome of the sizes the service writes (the limit baseline's
/// too).
pub const REQUEST_HASH: &str = "5f1c2e0d9a7b4c3e8f6a1d2b3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60";
pub const OUTCOME: &str = r#"{"Done":{"entry_id":1234567,"amount":"0.01","takes":[{"lot_id":12345,"amount":"0.01"}],"available_after":"1999999.99","effective_at":"2026-11-30T00:00:00.123456Z"}}"#;

/// The pgbench script for a scenario: a random account out of `accounts`, or always `bench-0`.
/// With `notify`, the script also sends the service's `pg_notify` of the balance change.
pub fn pgbench_script(pick: Pick, notify: bool) -> String {
    let account = match pick {
        Pick::Many(n) => format!("\\set n random(0, {})", n - 1),
        Pick::Hot => "\\set n 0".to_string(),
        Pick::Account(_) => unreachable!("the baselines spend on bench-<n> accounts; reads have no baseline"),
    };
    let notify = if notify { "SELECT pg_notify('credits_balance', :acc::text);\n" } else { "" };
    // `now()` is the transaction's start: the entry and its lines are recorded at one instant.
    format!(
        r#"{account}
\set key random(0, 9223372036854775806)
BEGIN;
UPDATE accounts SET balance_micros = balance_micros - {AMOUNT_MICROS} WHERE external_id = 'bench-' || :n RETURNING id AS acc, balance_micros AS after \gset
INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at)
  VALUES (:acc, 'spend', 'pgbench-' || :key, '{REQUEST_HASH}', '{OUTCOME}', now(), now() + interval '30 days');
WITH locked AS MATERIALIZED (
    SELECT id, class, expires_at, remaining_micros FROM lots WHERE account_id = :acc AND open ORDER BY id FOR UPDATE
), ordered AS (
    SELECT id, remaining_micros,
           SUM(remaining_micros) OVER (ORDER BY CASE WHEN class = 'paid' THEN 1 ELSE 0 END, expires_at NULLS LAST, id) AS upto
    FROM locked
), takes AS (
    SELECT id, LEAST(remaining_micros, {AMOUNT_MICROS} - (upto - remaining_micros)) AS take FROM ordered WHERE upto - remaining_micros < {AMOUNT_MICROS}
), moved AS (
    UPDATE lots l SET remaining_micros = l.remaining_micros - t.take, open = l.remaining_micros - t.take > 0
    FROM takes t WHERE l.id = t.id RETURNING l.id, t.take
), entry AS (
    INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, feature, balance_after_micros)
    SELECT :acc, 'spend', -SUM(take), now(), now(), 'spend', 'pgbench-' || :key, 'bench', :after FROM moved RETURNING id
)
INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) SELECT entry.id, moved.id, -moved.take, now() FROM entry, moved;
{notify}COMMIT;
"#
    )
}

/// How to run pgbench: the executable, where its script and logs go, and whether the script
/// also sends the service's `pg_notify`.
pub struct Pgbench<'a> {
    pub exe: &'a str,
    pub workdir: &'a Path,
    pub notify: bool,
}

/// The per-spend baseline: `pgbench -n -f script -c N -j N -T warmup+seconds`, with a
/// per-transaction log from which the last `seconds` are measured the way the HTTP clients are.
pub async fn pgbench(
    bench: &Pgbench<'_>,
    url: &str,
    pick: Pick,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Measured> {
    let script = Script { tag: format!("pgbench-{}-{clients}", pick_label(pick)), text: pgbench_script(pick, bench.notify), spends: 1 };
    run_pgbench(bench, url, &script, clients, warmup, seconds).await
}

/// A pgbench custom script: its text, the name its file and logs take, and how many spends each
/// of its transactions makes.
pub struct Script {
    pub tag: String,
    pub text: String,
    pub spends: usize,
}

/// A name for a pick in file names.
pub fn pick_label(pick: Pick) -> &'static str {
    match pick {
        Pick::Many(_) => "many",
        Pick::Hot => "hot",
        Pick::Account(account) => account,
    }
}

/// Runs `script` (saved as `{tag}.sql`) under pgbench for warm-up + window: the latency is a
/// transaction's, the throughput counts spends, and a failed transaction fails all its spends.
pub async fn run_pgbench(
    bench: &Pgbench<'_>,
    url: &str,
    script: &Script,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Measured> {
    let Pgbench { exe: pgbench, workdir, .. } = *bench;
    let Script { tag, text, spends } = script;
    let spends = *spends;
    let script = workdir.join(format!("{tag}.sql"));
    std::fs::write(&script, text)?;
    let logs = workdir.join(format!("{tag}-log"));
    std::fs::create_dir_all(&logs)?;
    let total = (warmup + seconds).as_secs().max(1);
    let output = tokio::process::Command::new(pgbench)
        .arg("-n")
        .arg("-f")
        .arg(&script)
        .args(["-c", &clients.to_string(), "-j", &clients.to_string(), "-T", &total.to_string()])
        .arg("-l")
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
        .arg(url)
        .current_dir(workdir)
        .output()
        .await
        .with_context(|| format!("run {pgbench}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    // client_id transaction_no time script_no time_epoch time_us: `time` is the latency in µs,
    // or a word for a failed transaction.
    let mut transactions = Vec::new();
    for file in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(file?.path())?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 {
                continue;
            }
            let done = fields[4].parse::<u64>().unwrap_or(0) * 1_000_000 + fields[5].parse::<u64>().unwrap_or(0);
            transactions.push((done, fields[2].parse::<u64>().map_err(|_| line.to_string())));
        }
    }
    std::fs::remove_dir_all(&logs)?;
    let last = transactions.iter().map(|(done, _)| *done).max().context("pgbench logged no transaction")?;
    let from = last.saturating_sub(seconds.as_micros() as u64);
    let mut measured = Measured::new(seconds.as_secs_f64());
    for (done, latency) in transactions {
        match latency {
            Ok(micros) if done.saturating_sub(micros) >= from => {
                measured.record_items(micros, Items { ok: spends as u64, ..Items::default() })
            }
            Ok(_) => {}
            Err(line) if done >= from => measured.record_items(0, Items::all_failed(spends, format!("pgbench: {line}"))),
            Err(_) => {}
        }
    }
    Ok(measured)
}

/// The SQLite library's version and the settings the service's connections get.
pub async fn sqlite_settings(url: &str) -> anyhow::Result<String> {
    let db = credits::db::connect(url, 1).await?;
    let pool = db.get_sqlite_connection_pool().clone();
    let version: String = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&pool).await?;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&pool).await?;
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&pool).await?;
    db.close().await?;
    let synchronous = ["off", "normal", "full", "extra"].get(synchronous as usize).copied().unwrap_or("?");
    Ok(format!("SQLite {version}, journal_mode {journal}, synchronous {synchronous}, busy_timeout {busy} ms"))
}

/// SQLite: `clients` tasks over the service's own connection settings and pool size (8).
pub async fn sqlite_loop(url: &str, pick: Pick, clients: usize, warmup: Duration, seconds: Duration) -> anyhow::Result<Measured> {
    let db = credits::db::connect(url, clients.min(8) as u32).await?;
    let pool = db.get_sqlite_connection_pool().clone();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await?;
    if journal != "wal" {
        bail!("the SQLite baseline expected WAL, found {journal}");
    }
    let total = crate::load::closed_loop_of(pick, clients, warmup, seconds, "baseline-", move |account, key| {
        let pool = pool.clone();
        async move { sqlite_spend(&pool, &account, &key).await.map_err(|e| format!("sqlite: {e}")) }
    })
    .await;
    db.close().await?;
    Ok(total)
}

/// Ends a SQLite transaction begun with `BEGIN IMMEDIATE`: its commit if `result` is `Ok`, else
/// its rollback and the error.
pub async fn finish(conn: &mut sqlx::SqliteConnection, result: Result<(), sqlx::Error>) -> Result<(), sqlx::Error> {
    match result {
        Ok(()) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(())
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}

async fn sqlite_spend(pool: &sqlx::SqlitePool, account: &str, key: &str) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let result = async {
        // To the microsecond, as the service records instants.
        let now = credits::ledger::time::truncate(Utc::now());
        let (account_id, after): (i64, i64) =
            sqlx::query_as("UPDATE accounts SET balance_micros = balance_micros - ? WHERE external_id = ? RETURNING id, balance_micros")
                .bind(AMOUNT_MICROS)
                .bind(account)
                .fetch_one(&mut *conn)
                .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (account_id, operation, key, request_hash, outcome, created_at, expires_at) \
             VALUES (?, 'spend', ?, ?, ?, ?, ?)",
        )
        .bind(account_id)
        .bind(key)
        .bind(REQUEST_HASH)
        .bind(OUTCOME)
        .bind(now)
        .bind(now + chrono::Duration::days(30))
        .execute(&mut *conn)
        .await?;
        let mut lots: Vec<(i64, String, Option<String>, i64)> =
            sqlx::query_as("SELECT id, class, expires_at, remaining_micros FROM lots WHERE account_id = ? AND open ORDER BY id")
                .bind(account_id)
                .fetch_all(&mut *conn)
                .await?;
        // arkain's order: free and promotional first, soonest expiry first (never last), then paid.
        lots.sort_by(|a, b| {
            let key = |l: &(i64, String, Option<String>, i64)| (l.1 == "paid", l.2.is_none(), l.2.clone(), l.0);
            key(a).cmp(&key(b))
        });
        let mut left = AMOUNT_MICROS;
        let mut takes = Vec::new();
        for (id, _, _, remaining) in lots {
            if left == 0 {
                break;
            }
            let take = remaining.min(left);
            sqlx::query("UPDATE lots SET remaining_micros = ?, open = ? WHERE id = ?")
                .bind(remaining - take)
                .bind(remaining - take > 0)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            takes.push((id, take));
            left -= take;
        }
        if left > 0 {
            return Err(sqlx::Error::Protocol("insufficient credits in the baseline".into()));
        }
        let entry: i64 = sqlx::query_scalar(
            "INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, feature, \
             balance_after_micros) VALUES (?, 'spend', ?, ?, ?, 'spend', ?, 'bench', ?) RETURNING id",
        )
        .bind(account_id)
        .bind(-AMOUNT_MICROS)
        .bind(now)
        .bind(now)
        .bind(key)
        .bind(after)
        .fetch_one(&mut *conn)
        .await?;
        for (lot, take) in takes {
            // Recorded at its entry's instant (migration 000033; the audit checks it).
            sqlx::query("INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) VALUES (?, ?, ?, ?)")
                .bind(entry)
                .bind(lot)
                .bind(-take)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    finish(&mut conn, result).await
}
