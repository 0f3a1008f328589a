//! A private PostgreSQL server for fault tests, which may stop it, start it again, or (later)
//! run fleets of processes against it. The machine's shared server on 5432 is never touched.
//!
//! The server lives in a temporary directory: its data directory, its unix socket and its log.
//! It listens on 127.0.0.1 only, on a free port of its own, with trust authentication for
//! `postgres`, and `fsync = off` (a test server: it is never recovered from an OS crash).
//! `initdb` and `pg_ctl` refuse to run as root (CI runs as root), so as root they run as the
//! `postgres` user (`runuser`), which then owns the directory; as any other user they run
//! directly. The binaries are found in `CREDITS_TEST_PG_BIN`, else
//! `/usr/lib/postgresql/15/bin` (Debian's place, not on `PATH`).
//!
//! The methods block (they wait for `pg_ctl`): call them from async tests directly, as a pause
//! of a second or two, or through `spawn_blocking` where that matters. Dropping the server stops
//! it (immediately) and removes the directory.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the binaries through `runuser -u postgres`.
    as_postgres: bool,
    settings: Vec<(String, String)>,
}

fn bin_dir() -> PathBuf {
    std::env::var_os("CREDITS_TEST_PG_BIN").map_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"), PathBuf::from)
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port nobody listens on now. Another process could take it before the server binds it;
/// `start` then fails with the log, which says so.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl PrivatePostgres {
    /// initdb and start a server with the default settings.
    pub fn start() -> PrivatePostgres {
        PrivatePostgres::start_with(&[])
    }

    /// initdb and start a server with `settings` (e.g. `("max_connections", "300")`) added to
    /// its command line, now and on every `start_again`.
    pub fn start_with(settings: &[(&str, &str)]) -> PrivatePostgres {
        let dir = tempfile::Builder::new().prefix("credits-pg-").tempdir().expect("a temporary directory");
        let as_postgres = running_as_root();
        if as_postgres {
            let owned = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status().expect("chown runs");
            assert!(owned.success(), "chown the private server's directory to postgres");
        }
        let server = PrivatePostgres {
            dir,
            bin: bin_dir(),
            port: free_port(),
            as_postgres,
            settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        std::fs::create_dir(server.socket_dir()).expect("the socket directory");
        if as_postgres {
            let owned = Command::new("chown").args(["postgres:postgres"]).arg(server.socket_dir()).status().expect("chown runs");
            assert!(owned.success());
        }
        let data = server.data_dir();
        server.run(
            "initdb",
            &["-D", path_str(&data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            "initdb",
        );
        server.start_again();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database, to create others from.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// A URL for database `name` on this server (which `create_database` makes).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sea_orm::ConnectionTrait;
        let admin = credits::db::connect(&self.admin_url(), 1).await.expect("the private server accepts connections");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create a database");
        let _ = admin.close().await;
        self.url(name)
    }

    /// Stops the server: `pg_ctl stop -m fast`, which ends every connection (clients see their
    /// connections break, then refused) and returns once the server is down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Stops the server as a crash would: `pg_ctl stop -m immediate`, no checkpoint, every
    /// connection cut; the next start recovers from the WAL.
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }

    /// Starts the server (again) on the same port and data directory, and returns once it
    /// accepts connections.
    pub fn start_again(&self) {
        let mut options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, path_str(&self.socket_dir()));
        for (key, value) in &self.settings {
            options.push_str(&format!(" -c {key}={value}"));
        }
        let log = self.log_file();
        self.pg_ctl(&["start", "-l", path_str(&log), "-o", &options]);
    }

    /// Whether the server runs now.
    pub fn is_running(&self) -> bool {
        self.command("pg_ctl").args(["status", "-D", path_str(&self.data_dir())]).output().is_ok_and(|out| out.status.success())
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Every deadlock PostgreSQL reported so far, each with the lines that follow it (the two
    /// processes, their statements, the failing statement), for a failing test's message.
    pub fn deadlocks(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let mut reports = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            if line.contains("deadlock detected") {
                reports.push(lines[n..(n + 16).min(lines.len())].join("\n"));
            }
        }
        reports.join("\n---\n")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data_dir();
        let mut all = vec!["-D", path_str(&data), "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all, args[0]);
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str], what: &str) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} could not run (is PostgreSQL installed in {}?): {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "{what} failed: {}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.is_running() {
            let data = self.data_dir();
            let _ = self.command("pg_ctl").args(["-D", path_str(&data), "-w", "-t", "30", "stop", "-m", "immediate"]).output();
        }
        // The TempDir removes the directory when it drops, as the owner's parent (root) may.
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
