//! `credits export` and `credits import` of a large ledger (issue 24): the release binary as a
//! child process, timed, its peak resident set (VmHWM) read from /proc while it runs. The
//! ledger is the `reads` scenario's long past (`seed::seed_history`: ten journal entries and
//! lines per used-up lot) beside the seeded accounts; the copy is loaded into a fresh database
//! of the same kind and must pass the audit that `import` runs.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// One run of a `credits` command.
#[derive(Debug, Clone)]
pub struct Measured {
    pub elapsed: Duration,
    /// The largest VmHWM read while it ran (sampled every 10 ms; VmHWM is itself a high-water
    /// mark, so only growth in the last sample's interval could be missed).
    pub peak_rss_mib: f64,
    pub stdout: String,
    pub stderr: String,
}

/// The export and the import of one database.
#[derive(Debug, Clone)]
pub struct Run {
    pub rows: u64,
    pub bytes: u64,
    pub export: Measured,
    pub import: Measured,
}

fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs `credits ARGS` on `url` with a clean environment; fails unless it exits 0.
async fn measured(bin: &Path, args: &[&str], url: &str, workdir: &Path) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("DATABASE_URL", url)
        .env("CREDITS_DATA_DIR", workdir.join("data"))
        .env("RUST_LOG", "warn")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let pid = child.id().context("a pid")?;
    let (mut stdout, mut stderr) = (child.stdout.take().context("stdout")?, child.stderr.take().context("stderr")?);
    let outputs = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (String::new(), String::new());
        let _ = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
        (out, err)
    });
    let mut peak: f64 = 0.0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(mib) = vm_hwm_mib(pid) {
            peak = peak.max(mib);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    let (stdout, stderr) = outputs.await?;
    if !status.success() {
        bail!("credits {} exited with {status}:\n{stderr}\n{stdout}", args.join(" "));
    }
    Ok(Measured { elapsed, peak_rss_mib: peak, stdout, stderr })
}

/// Exports `url` to a file in `workdir`, then imports it into `target_url` (empty).
pub async fn run(bin: &Path, url: &str, target_url: &str, workdir: &Path) -> anyhow::Result<Run> {
    let file = workdir.join("ledger.jsonl");
    let path = file.to_str().context("a UTF-8 path")?;
    let export = measured(bin, &["export", "--output", path], url, workdir).await?;
    let bytes = std::fs::metadata(&file)?.len();
    // The checksum line's count: the rows written.
    let rows = export
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("exported ").and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .context("export reports its rows")?;
    let import = measured(bin, &["import", path], target_url, workdir).await?;
    if !import.stdout.contains("OK: conservation holds") {
        bail!("the imported copy's audit did not pass:\n{}", import.stdout);
    }
    std::fs::remove_file(&file)?;
    Ok(Run { rows, bytes, export, import })
}
