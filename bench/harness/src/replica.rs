//! What a streaming replica's lag does to reading one's own writes (issue 29, docs/scaling.md,
//! "Read replicas"). Not a feature: the service reads nothing from a replica. Measured while
//! `--clients` clients spend over many accounts on the primary:
//!
//! - the lag in bytes, sampled every 10 ms: the primary's `pg_current_wal_lsn()` less the
//!   replica's `pg_last_wal_replay_lsn()`;
//! - read-your-writes: one more client spends, and as soon as the answer arrives looks for the
//!   spend's journal entry (its `sequence`) on the replica, then again every 0.2 ms until it is
//!   there. How often it is missing at once, and how long until it shows, is what a client
//!   reading its history from a replica right after a spend would see.
//!
//! The replica is `--replica-url` (a server whose primary is `--pg-url`; `bench/replica.sh`
//! starts such a pair on this machine); the benchmark's database is read there by name.

use crate::load::{self, Measured, Pick, Target};
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEND: &str = "mutation Spend($input: SpendCreditsInput!) { spendCredits(input: $input) { sequence } }";

/// The lag and the read-your-writes probes of one run.
pub struct Report {
    /// Lag samples, in bytes of WAL.
    pub lag_bytes: Histogram<u64>,
    /// Microseconds from a spend's answer until the replica showed its entry.
    pub visible_after_us: Histogram<u64>,
    pub probes: u64,
    /// Probes whose entry the replica did not have on the first look.
    pub missed_at_once: u64,
}

/// An LSN ("16/B374D848") as a byte position.
fn lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) + u64::from_str_radix(low, 16).ok()?)
}

async fn text(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    Ok(row.ok_or_else(|| anyhow::anyhow!("no row for {sql}"))?.try_get_by_index(0)?)
}

async fn sample_lag(primary: &DatabaseConnection, replica: &DatabaseConnection, until: Instant) -> anyhow::Result<Histogram<u64>> {
    let mut lag = load::histogram();
    while Instant::now() < until {
        let written = lsn(&text(primary, "SELECT pg_current_wal_lsn()::text").await?);
        let replayed = lsn(&text(replica, "SELECT COALESCE(pg_last_wal_replay_lsn()::text, '0/0')").await?);
        if let (Some(written), Some(replayed)) = (written, replayed) {
            lag.record(written.saturating_sub(replayed))?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(lag)
}

async fn probe(target: &Target, replica: &DatabaseConnection, accounts: u64, until: Instant) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut visible = load::histogram();
    let (mut probes, mut missed) = (0u64, 0u64);
    let run = load::run_id();
    while Instant::now() < until {
        let account = format!("bench-{}", probes % accounts.max(1));
        let body = serde_json::json!({
            "query": SPEND,
            "variables": { "input": { "accountId": account, "amount": load::AMOUNT, "feature": "bench", "idempotencyKey": format!("replica-{run}-{probes}") } },
        });
        let answer: serde_json::Value = target
            .client
            .post(&target.urls[0])
            .header(reqwest::header::AUTHORIZATION, &target.authorization)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let answered = Instant::now();
        let sequence: i64 = answer["data"]["spendCredits"]["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| answer["data"]["spendCredits"]["sequence"].as_i64())
            .ok_or_else(|| anyhow::anyhow!("a spend without its sequence: {answer}"))?;
        let sql = format!("SELECT EXISTS (SELECT 1 FROM journal_entries WHERE id = {sequence})::text");
        let mut first = true;
        loop {
            if text(replica, &sql).await? == "true" {
                break;
            }
            if first {
                missed += 1;
                first = false;
            }
            if answered.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("entry {sequence} did not reach the replica within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        visible.record(answered.elapsed().as_micros() as u64)?;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((visible, probes, missed))
}

/// Spends by `clients` clients for `warmup + seconds`, the lag sampled and the probe running
/// through all of it.
pub async fn measure(
    target: Arc<Target>,
    primary: &DatabaseConnection,
    replica: &DatabaseConnection,
    accounts: u64,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<(Measured, Report)> {
    let until = Instant::now() + warmup + seconds;
    let (measured, lag, probed) = tokio::join!(
        load::closed_loop(target.clone(), Pick::Many(accounts as usize), clients, warmup, seconds),
        sample_lag(primary, replica, until),
        probe(&target, replica, accounts, until)
    );
    let (visible_after_us, probes, missed_at_once) = probed?;
    Ok((measured, Report { lag_bytes: lag?, visible_after_us, probes, missed_at_once }))
}

pub fn print(clients: usize, report: &Report) {
    let lag = &report.lag_bytes;
    let seen = &report.visible_after_us;
    println!(
        "replica postgres {clients:>3} clients: lag bytes p50 {} p99 {} max {} ({} samples); own spend missing on the replica at once {} of {} ({:.1}%); visible after p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        lag.value_at_quantile(0.5),
        lag.value_at_quantile(0.99),
        lag.max(),
        lag.len(),
        report.missed_at_once,
        report.probes,
        100.0 * report.missed_at_once as f64 / report.probes.max(1) as f64,
        seen.value_at_quantile(0.5) as f64 / 1000.0,
        seen.value_at_quantile(0.99) as f64 / 1000.0,
        seen.max() as f64 / 1000.0,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsns_read_as_byte_positions() {
        assert_eq!(super::lsn("0/0"), Some(0));
        assert_eq!(super::lsn("16/B374D848"), Some((0x16 << 32) + 0xB374_D848));
        assert_eq!(super::lsn("nonsense"), None);
    }
}
