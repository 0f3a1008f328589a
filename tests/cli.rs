use credits::auth::{AuthKeys, Caller};
use std::process::Command;

fn credits(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("CREDITS_AUTH_SECRET")
        .env_remove("CREDITS_CONFIG")
        .env("CREDITS_DATA_DIR", data_dir)
        .current_dir(data_dir);
    command
}

/// With nothing configured, `token` generates the secret beside the embedded database and
/// prints only the token; `serve` reads the same file, so the two agree.
#[test]
fn token_prints_only_a_token_signed_with_the_embedded_secret() {
    let dir = tempfile::tempdir().unwrap();
    let first = credits(dir.path()).args(["token", "--role", "user", "--account", "alice"]).output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout holds the token and nothing else: {stdout:?}");
    let secret = std::fs::read_to_string(dir.path().join("credits.secret")).expect("the secret is kept beside the database");
    let keys = AuthKeys::new(secret.trim().as_bytes());
    assert_eq!(keys.authenticate(Some(&format!("Bearer {}", stdout.trim()))), Ok(Caller::User { account: "alice".into() }));

    let second = credits(dir.path()).args(["token", "--role", "admin", "--subject", "alice@ops", "--ttl", "1h"]).output().unwrap();
    let token = String::from_utf8(second.stdout).unwrap();
    assert_eq!(
        keys.authenticate(Some(&format!("Bearer {}", token.trim()))),
        Ok(Caller::Admin { subject: Some("alice@ops".into()) }),
        "the same secret signs every token, and an admin token names its operator"
    );
    let nameless = credits(dir.path()).args(["token", "--role", "admin"]).output().unwrap();
    assert!(!nameless.status.success(), "an admin token must name its operator");
    assert!(String::from_utf8_lossy(&nameless.stderr).contains("subject"), "{}", String::from_utf8_lossy(&nameless.stderr));
    let blank = credits(dir.path()).args(["token", "--role", "admin", "--subject", " "]).output().unwrap();
    assert!(!blank.status.success(), "a blank subject names nobody");

    let no_account = credits(dir.path()).args(["token", "--role", "user"]).output().unwrap();
    assert!(!no_account.status.success(), "a user token must name its account");
    let bad_role = credits(dir.path()).args(["token", "--role", "root"]).output().unwrap();
    assert!(!bad_role.status.success());
}

#[test]
fn a_postgres_database_needs_a_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = credits(dir.path()).args(["token", "--role", "service"]).env("DATABASE_URL", "postgres://127.0.0.1/none").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CREDITS_AUTH_SECRET"));
}

/// A config file sets what the environment does not; the environment wins where both do.
#[test]
fn configuration_comes_from_a_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file_secret = "from-the-file-from-the-file-from-the-file";
    std::fs::write(dir.path().join("credits.toml"), format!("auth_secret = \"{file_secret}\"\nprogram = \"carat\"\n")).unwrap();
    let from_file = credits(dir.path()).args(["token", "--role", "service"]).output().unwrap();
    assert!(from_file.status.success(), "{}", String::from_utf8_lossy(&from_file.stderr));
    let token = String::from_utf8(from_file.stdout).unwrap();
    assert_eq!(AuthKeys::new(file_secret.as_bytes()).authenticate(Some(&format!("Bearer {}", token.trim()))), Ok(Caller::Service));

    let env_secret = "from-the-environment-from-the-environment";
    let from_env = credits(dir.path()).args(["token", "--role", "service"]).env("CREDITS_AUTH_SECRET", env_secret).output().unwrap();
    let token = String::from_utf8(from_env.stdout).unwrap();
    assert_eq!(AuthKeys::new(env_secret.as_bytes()).authenticate(Some(&format!("Bearer {}", token.trim()))), Ok(Caller::Service));

    let missing = credits(dir.path()).args(["--config", "nope.toml", "token", "--role", "service"]).output().unwrap();
    assert!(!missing.status.success());
    let short = credits(dir.path()).args(["token", "--role", "service"]).env("CREDITS_AUTH_SECRET", "short").output().unwrap();
    assert!(!short.status.success(), "a short secret is refused");
    // The retention settings are read from the environment too (the markers' floor is 31 days).
    for (days, ok) in [("10", false), ("31", true)] {
        let out = credits(dir.path()).args(["token", "--role", "service"]).env("CREDITS_RETAIN_JOB_MARKERS_DAYS", days).output().unwrap();
        assert_eq!(out.status.success(), ok, "CREDITS_RETAIN_JOB_MARKERS_DAYS={days}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for (lanes, ok) in [("0", false), ("65", false), ("many", false), ("8", true)] {
        let out = credits(dir.path()).args(["token", "--role", "service"]).env("CREDITS_SPEND_LANES", lanes).output().unwrap();
        assert_eq!(out.status.success(), ok, "CREDITS_SPEND_LANES={lanes}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// An empty, blank or short secret file would become the HS256 key and let anyone forge an admin
/// token: `token` and `serve` refuse it and say why.
#[test]
fn a_short_secret_file_is_refused() {
    for content in ["", "   \n", "short-secret", &"x".repeat(31)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credits.secret"), content).unwrap();
        let token = credits(dir.path()).args(["token", "--role", "admin", "--subject", "ops"]).output().unwrap();
        assert!(!token.status.success(), "{content:?} signed a token: {}", String::from_utf8_lossy(&token.stdout));
        assert!(token.stdout.is_empty());
        assert!(String::from_utf8_lossy(&token.stderr).contains("fewer than 32"), "{}", String::from_utf8_lossy(&token.stderr));
        let serve = credits(dir.path()).args(["serve", "--bind", "127.0.0.1:0"]).output().unwrap();
        assert!(!serve.status.success(), "serve started with the secret {content:?}");
        assert!(String::from_utf8_lossy(&serve.stderr).contains("fewer than 32"), "{}", String::from_utf8_lossy(&serve.stderr));
    }
}

/// Sixteen `credits token` processes started at once on a fresh directory: one generated secret
/// is published whole, and every token is signed with it (creating the file and then writing it
/// let one racer sign with an empty key and another with a secret that was never kept).
#[test]
fn racing_processes_agree_on_one_generated_secret() {
    // The window is short: several fresh directories make a lost race likely to show.
    for _round in 0..RACE_ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..16)
            .map(|_| {
                credits(dir.path())
                    .args(["token", "--role", "admin", "--subject", "ops"])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let tokens: Vec<String> = children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8(out.stdout).unwrap().trim().to_string()
            })
            .collect();
        let secret = std::fs::read_to_string(dir.path().join("credits.secret")).unwrap();
        assert_eq!(secret.trim().len(), 64, "a whole generated secret: {secret:?}");
        let keys = AuthKeys::new(secret.trim().as_bytes());
        for token in &tokens {
            assert_eq!(
                keys.authenticate(Some(&format!("Bearer {token}"))),
                Ok(Caller::Admin { subject: Some("ops".into()) }),
                "every token is signed with the kept secret"
            );
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert!(names.iter().all(|name| !name.to_string_lossy().starts_with(".credits.secret")), "a temporary file was left: {names:?}");
    }
}

const RACE_ROUNDS: usize = 40;

/// `credits jobs --run` runs every job once and shows each job's runs and next run.
#[test]
fn jobs_runs_and_reports_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = credits(dir.path()).args(["jobs", "--run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for job in ["ExpireLots", "GrantMonthlyPlanCredits", "RenewSubscriptions", "ReleaseReferralBonuses", "PurgeIdempotencyKeys"] {
        assert!(stdout.contains(job), "{stdout}");
    }
    assert!(stdout.contains(" done "), "the month's grant is recorded as done: {stdout}");
}

/// `credits worker` starts the job monitor and stops cleanly on SIGTERM.
#[test]
fn worker_starts_and_stops_gracefully_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut worker = credits(dir.path()).arg("worker").env("RUST_LOG", "info").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(worker.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let started = lines.by_ref().take(200).map_while(Result::ok).any(|line| line.contains("workers started"));
    assert!(started, "the monitor did not report its start");
    let killed = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = worker.wait().unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

/// `console-link` prints one URL into the console with a one-time code in its fragment; only
/// the code's SHA-256 is stored. Each call makes a new link; a link is for a named operator and
/// lives at most a day.
#[tokio::test]
async fn console_link_prints_a_one_time_url_and_stores_only_its_hash() {
    use sea_orm::{ConnectionTrait, Statement};
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| credits(dir.path()).arg("console-link").args(args).output().unwrap();
    let first = run(&["--subject", "alice@ops"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let code = stdout.trim().strip_prefix("http://127.0.0.1:8080/console#code=").unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(code.len(), 43, "{code}");
    let second = String::from_utf8(run(&["--subject", "alice@ops", "--ttl", "1h"]).stdout).unwrap();
    assert_ne!(second.trim(), stdout.trim(), "a new code each time");
    assert!(!run(&["--subject", "alice@ops", "--ttl", "25h"]).status.success(), "a day at most");
    assert!(!run(&[]).status.success(), "a link names its operator");

    let db = credits::db::connect(&format!("sqlite://{}", dir.path().join("credits.db").display()), 1).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT code_hash, subject FROM console_links ORDER BY id"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let hash: String = rows[0].try_get("", "code_hash").unwrap();
    assert_eq!(hash, hex::encode(sha2::Sha256::digest(code.as_bytes())), "the hash, never the code");
    assert_eq!(rows[0].try_get::<String>("", "subject").unwrap(), "alice@ops");
}

/// `config check` prints the resolved configuration with every secret masked, and every problem
/// at once (exit 1); a good configuration exits 0. It writes nothing: no secret is generated.
#[test]
fn config_check_masks_secrets_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-real-secret-a-real-secret-a-real-secret";
    let bad = credits(dir.path())
        .args(["config", "check"])
        .env("CREDITS_AUTH_SECRET", secret)
        .env("DATABASE_URL", "postgres://user:db-password@localhost/credits")
        .env("CREDITS_MAX_DEPTH", "2")
        .env("CREDITS_LOG_FORMAT", "xml")
        .env("CREDITS_METRICS_TOKEN", "short")
        .env("CREDITS_WEBHOOK_URL", "https://hooks.example.com/in")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8(bad.stdout).unwrap(), String::from_utf8(bad.stderr).unwrap());
    assert!(!stdout.contains(secret) && !stdout.contains("db-password") && !stderr.contains(secret), "{stdout}{stderr}");
    assert!(stdout.contains("auth_secret = \"********\"") && stdout.contains("postgres://user:********@localhost/credits"), "{stdout}");
    assert!(stdout.contains("max_depth = 2"), "{stdout}");
    for problem in ["max_depth", "log_format", "metrics_token", "WEBHOOK_SECRET"] {
        assert!(stderr.lines().any(|l| l.starts_with("problem:") && l.contains(problem)), "{problem} in {stderr}");
    }

    let good = credits(dir.path()).args(["config", "check"]).output().unwrap();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("# no problems found"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}
