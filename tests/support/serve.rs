//! `credits serve` as a child process, for the tests that need the real binary (crash safety,
//! outages, test clocks): on a free port, its log in a file, ready once `/health` answers 200,
//! and killed and reaped when dropped, so a panic never leaks it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become healthy: migrations on a loaded machine.
const READY: Duration = Duration::from_secs(60);

pub struct ServeProcess {
    pub child: Child,
    pub address: String,
    pub log: PathBuf,
}

/// The binary under test, without the caller's configuration leaking in.
pub fn credits_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command.env_remove("CREDITS_CONFIG");
    command
}

/// The binary with what most process tests give it: the database, the tests' token secret,
/// `program`, and an info log without colours for the test to read.
pub fn service_command(database_url: &str, program: &str) -> Command {
    let mut command = credits_command();
    command
        .env("DATABASE_URL", database_url)
        .env("CREDITS_AUTH_SECRET", std::str::from_utf8(super::SECRET).unwrap())
        .env("CREDITS_PROGRAM", program)
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1");
    command
}

/// `credits worker` as a child process: the jobs alone, no HTTP, so its log (in a file) is all
/// it says; killed and reaped when dropped.
pub struct WorkerProcess {
    pub child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Runs `command` (from `credits_command`, with its environment) as `worker`, its stderr in
    /// `dir/{name}.log`.
    pub fn start(mut command: Command, dir: &Path, name: &str) -> WorkerProcess {
        let log = dir.join(format!("{name}.log"));
        let child = command
            .arg("worker")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("the credits binary starts");
        WorkerProcess { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Runs `command` (from `credits_command`, with its environment) as `serve --bind` on a free
    /// port with `flags`, its stderr in `dir/{name}.log`, and waits until it is healthy.
    pub async fn start(mut command: Command, flags: &[&str], dir: &Path, name: &str) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join(format!("{name}.log"));
        let child = command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(flags)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("the credits binary starts");
        let mut serve = ServeProcess { child, address: format!("http://127.0.0.1:{port}"), log };
        let client = reqwest::Client::new();
        let started = Instant::now();
        // Bounded wait for a condition, not a sleep standing in for one.
        while started.elapsed() < READY {
            if client.get(format!("{}/health", serve.address)).send().await.is_ok_and(|r| r.status() == 200) {
                return serve;
            }
            serve.assert_alive();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become healthy: {}", serve.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the server exited ({status}): {}", self.log());
        }
    }

    /// SIGKILL: no shutdown, no flush, no chance to finish what is in flight.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().expect("reap the server");
        assert!(!status.success(), "the server was killed, not stopped: {status}");
    }

    /// SIGTERM, then the process must exit cleanly within `bound` (a hang bound).
    pub async fn stop_gracefully(mut self, bound: Duration) {
        self.terminate();
        self.exits_cleanly_within(bound).await;
    }

    /// Sends SIGTERM, and returns at once.
    pub fn terminate(&self) {
        let signalled = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(signalled.success());
    }

    /// Whether the process has exited (and is reaped).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the process to exit with success, for at most `bound`; how long it took.
    pub async fn exits_cleanly_within(&mut self, bound: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}: {}", self.log());
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not stop within {bound:?}: {}", self.log());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
