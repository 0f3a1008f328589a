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
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        // Passed through for experiments: the log filter and the spend lanes.
        for name in ["RUST_LOG", "CREDITS_SPEND_LANES"] {
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
        Ok(Server { child, pid, base, log })
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
