//! Debian's PgBouncer (1.18) in front of the machine's PostgreSQL, for the tests of running
//! behind it: its own configuration, port, log and pid file in a temporary directory, stopped
//! when dropped. It only forwards connections; the server behind it is not touched.
//!
//! PgBouncer refuses to run as root, so as root it runs as `postgres` (`runuser`), which then
//! owns the directory. `.ci/run` installs it; elsewhere `start` gives `None` when the binary is
//! missing, and the tests say they did not run (under CI they fail instead).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl PgBouncer {
    /// PgBouncer in `pool_mode` (session, transaction) forwarding every database to
    /// `target_host:target_port`, with trust authentication for `postgres`.
    pub fn start(pool_mode: &str, target_host: &str, target_port: u16) -> Option<PgBouncer> {
        if !std::path::Path::new(BINARY).exists() {
            assert!(std::env::var_os("CI").is_none(), "CI installs pgbouncer (.ci/run) and must run this test");
            eprintln!("skipped: {BINARY} is not installed (apt-get install pgbouncer)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("credits-pgbouncer-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let ini = format!(
            "[databases]\n* = host={target_host} port={target_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = {pool_mode}\ndefault_pool_size = 100\n\
             max_client_conn = 400\nlogfile = {}\npidfile = {}\nignore_startup_parameters = extra_float_digits,options\n",
            path("users.txt"),
            path("pgbouncer.log"),
            path("pgbouncer.pid"),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let mut command = if as_root {
            let owned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(owned.success(), "chown the PgBouncer directory to postgres");
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", BINARY]);
            command
        } else {
            Command::new(BINARY)
        };
        let child = command.arg(path("pgbouncer.ini")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("pgbouncer starts");
        let bouncer = PgBouncer { dir, port, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "PgBouncer did not listen: {}", bouncer.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bouncer)
    }

    /// A URL for database `name` through PgBouncer.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")).ok().map(|p| p.trim().to_string())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // `runuser` may not pass the signal on: PgBouncer's own pid is in its pid file.
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
