//! Runs a browser script from `tests/browser/` (Node with playwright-core, driving Debian's
//! Chromium with the network cut off from everything but the server) against a test server, and
//! reads what it reports (see `tests/browser/lib.mjs` for the protocol: `STEP` lines, then a
//! `RESULT` line of JSON). Any page the server serves (GraphiQL now, a portal or console later)
//! can be tested this way: write a script, start it with `BrowserScript::start`.
//!
//! Without Chromium, Node or the script's `node_modules` (`npm ci --prefix tests/browser`), a
//! test is skipped with a message, except when `CI` is set: then it fails, so CI cannot pass
//! without running it (`.ci/run` installs what it needs).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a script may take to reach a step, or to finish: its own waits are shorter
/// (`WAIT_MS`), so this only catches a hung browser.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Chromium, unless `CREDITS_CHROMIUM` names another binary.
fn chromium() -> PathBuf {
    std::env::var_os("CREDITS_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run browser scripts here, if anything.
fn missing() -> Option<String> {
    let chromium = chromium();
    if !chromium.is_file() {
        return Some(format!("no Chromium at {} (apt-get install -y chromium, or set CREDITS_CHROMIUM)", chromium.display()));
    }
    if std::process::Command::new("node").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return Some("no `node` on PATH".to_string());
    }
    if !scripts_dir().join("node_modules/playwright-core").is_dir() {
        return Some("tests/browser has no node_modules (npm ci --prefix tests/browser)".to_string());
    }
    None
}

/// A running browser script.
pub struct BrowserScript {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl BrowserScript {
    /// Starts `tests/browser/{script}` on `base_url` with `env`, or returns `None` (after saying
    /// why) when this machine cannot run it and `CI` is not set.
    pub async fn start(script: &str, base_url: &str, env: &[(&str, &str)]) -> Option<BrowserScript> {
        if let Some(missing) = missing() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set, so the browser test {script} must run, but {missing}");
            }
            eprintln!("SKIPPED browser test {script}: {missing}");
            return None;
        }
        let mut command = Command::new("node");
        command
            .arg(scripts_dir().join(script))
            .arg(base_url)
            .env("CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("node starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stdin = child.stdin.take().expect("piped stdin");
        Some(BrowserScript { name: script.to_string(), child, stdin: Some(stdin), stdout })
    }

    /// The script's next line, or a failure with its stderr when it ended or hung.
    async fn next_line(&mut self) -> String {
        match tokio::time::timeout(STEP_TIMEOUT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => self.fail("ended").await,
            Err(_) => self.fail(&format!("printed nothing for {} s", STEP_TIMEOUT.as_secs())).await,
        }
    }

    async fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.start_kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), pipe.read_to_string(&mut stderr)).await;
        }
        panic!("browser script {} {what}; its stderr:\n{stderr}", self.name);
    }

    /// Waits for the script to print `STEP {name}`.
    pub async fn reached(&mut self, name: &str) {
        let expected = format!("STEP {name}");
        loop {
            if self.next_line().await == expected {
                return;
            }
        }
    }

    /// Lets a script waiting in `resumed(name)` (lib.mjs) go on: for a step after which the test
    /// changes something the page then reads, so the page cannot read before the change.
    pub async fn resume(&mut self, name: &str) {
        let stdin = self.stdin.as_mut().expect("the script's stdin is open until it finishes");
        let line = format!("GO {name}\n");
        let sent = match stdin.write_all(line.as_bytes()).await {
            Ok(()) => stdin.flush().await,
            Err(e) => Err(e),
        };
        // A script that already ended cannot read it: say why it ended, as `next_line` does.
        if let Err(e) = sent {
            self.fail(&format!("could not be resumed with \"{name}\" ({e})")).await;
        }
    }

    /// Waits for the script's `RESULT` and its successful exit, and returns the result.
    pub async fn finish(mut self) -> Value {
        // Closed, so a script still listening on it can end.
        self.stdin = None;
        let result = loop {
            let line = self.next_line().await;
            if let Some(json) = line.strip_prefix("RESULT ") {
                break serde_json::from_str::<Value>(json).expect("the RESULT line is JSON");
            }
        };
        let status =
            tokio::time::timeout(STEP_TIMEOUT, self.child.wait()).await.expect("the script exits").expect("the script is waited for");
        if !status.success() {
            self.fail(&format!("exited with {status}")).await;
        }
        result
    }
}
