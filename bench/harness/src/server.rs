//! The real server as a child process: `credits serve --no-workers` on a free port.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    pub log: PathBuf,
    /// Its own metrics listener (`/metrics`), on a port of its own.
    metrics: String,
}

/// How a server grouped its spends so far, from its metrics: batches committed, the spends in
/// them, and the spends a batch left out because another transaction held their account.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchCounts {
    pub batches: f64,
    pub spends: f64,
    pub skipped: f64,
}

impl BatchCounts {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: BatchCounts) -> BatchCounts {
        BatchCounts {
            batches: self.batches - earlier.batches,
            spends: self.spends - earlier.spends,
            skipped: self.skipped - earlier.skipped,
        }
    }

    pub fn sum(counts: impl IntoIterator<Item = BatchCounts>) -> BatchCounts {
        counts.into_iter().fold(BatchCounts::default(), |a, b| BatchCounts {
            batches: a.batches + b.batches,
            spends: a.spends + b.spends,
            skipped: a.skipped + b.skipped,
        })
    }

    /// `1234 batches (2.3 spends each), 5 spends skipped`.
    pub fn describe(self) -> String {
        let each = if self.batches > 0.0 { self.spends / self.batches } else { 0.0 };
        format!("{:.0} batches ({each:.1} spends each), {:.0} spends skipped", self.batches, self.skipped)
    }

    /// From the Prometheus text: the batch-size histogram's count and sum, and the skip counter
    /// (absent until a spend is skipped).
    fn parse(text: &str) -> BatchCounts {
        let value = |name: &str| {
            text.lines()
                .filter(|line| line.split([' ', '{']).next() == Some(name))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                // From 0.0: an empty `sum` of floats is -0.0, printed "-0".
                .fold(0.0, |total, value| total + value)
        };
        BatchCounts {
            batches: value("credits_spend_batch_size_count"),
            spends: value("credits_spend_batch_size_sum"),
            skipped: value("credits_spend_batch_skipped_total"),
        }
    }
}

/// A port nobody listens on right now (the kernel's pick, released at once).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts the server with a clean environment (only what it needs, so a developer's
    /// `credits.toml` or `CREDITS_*` variables do not leak in) and waits for `/health`.
    pub async fn start(bin: &Path, database_url: &str, secret: &str, workdir: &Path) -> anyhow::Result<Server> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let log = workdir.join(format!("server-{port}.log"));
        let stderr = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .args(["serve", "--no-workers", "--bind", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("CREDITS_AUTH_SECRET", secret)
            .env("CREDITS_PROGRAM", "arkain")
            .env("CREDITS_DATA_DIR", workdir.join("data"))
            .env("CREDITS_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        // Passed through for experiments: the log filter, the spend lanes, tokio's workers.
        for name in ["RUST_LOG", "CREDITS_SPEND_LANES", "TOKIO_WORKER_THREADS"] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        let mut child = command.spawn().with_context(|| format!("start {}", bin.display()))?;
        let pid = child.id().context("the server has a pid")?;
        let base = format!("http://127.0.0.1:{port}");
        let probe = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the server exited with {status} before it was healthy; its log:\n{}", tail(&log));
            }
            if let Ok(response) = probe.get(format!("{base}/health")).send().await
                && response.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server was not healthy within 60 s; its log:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server { child, pid, base, log, metrics: format!("http://127.0.0.1:{metrics_port}/metrics") })
    }

    /// Its batch counts now; zero if its metrics cannot be read (a run goes on without them).
    pub async fn batch_counts(&self, client: &reqwest::Client) -> BatchCounts {
        match client.get(&self.metrics).send().await {
            Ok(response) => BatchCounts::parse(&response.text().await.unwrap_or_default()),
            Err(_) => BatchCounts::default(),
        }
    }

    /// The server's peak resident set so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it has not exited within 10 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("the server did not stop within 10 s of SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The last lines of a log, for an error message.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::BatchCounts;

    #[test]
    fn batch_counts_come_from_the_histogram_and_the_counter() {
        let text = "# TYPE credits_spend_batch_size histogram\ncredits_spend_batch_size_bucket{le=\"1\"} 3\n\
                    credits_spend_batch_size_sum 17\ncredits_spend_batch_size_count 5\ncredits_spend_batch_skipped_total 2\n\
                    credits_spend_batch_size_sum_other 99\n";
        assert_eq!(BatchCounts::parse(text), BatchCounts { batches: 5.0, spends: 17.0, skipped: 2.0 });
        assert_eq!(BatchCounts::parse("").describe(), "0 batches (0.0 spends each), 0 spends skipped");
    }
}
