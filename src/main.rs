use clap::{Parser, Subcommand};
use credits::auth::{AuthKeys, Role};
use credits::config::{Config, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: with many long-lived connections and subscriptions the heap
/// fragments and glibc's allocator searched its bins for a quarter of the server's CPU
/// (docs/benchmarks.md, "Idle subscribers").
/// A build without the `mimalloc` feature keeps the system's allocator, for heap profilers.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Credits: a prepaid credit ledger served over GraphQL.
#[derive(Debug, Parser)]
#[command(name = "credits", version, about)]
struct Cli {
    /// A TOML configuration file (else CREDITS_CONFIG, else ./credits.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database and serve GraphQL at /graphql.
    Serve {
        /// Address to listen on (else CREDITS_BIND, else 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<String>,
        /// Do not run the scheduled jobs in this process (run `credits worker` instead).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the scheduled jobs until SIGINT/SIGTERM; several may run against one PostgreSQL.
    Worker,
    /// Bring the database schema up to date.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Print a bearer token signed with the configured secret, and nothing else.
    Token {
        #[arg(long)]
        role: Role,
        /// The account a user token acts on (the product's own id).
        #[arg(long, conflicts_with = "subject")]
        account: Option<String>,
        /// The operator an admin token is for (required with `--role admin`): recorded with
        /// every action taken with it, e.g. "alice@ops".
        #[arg(long)]
        subject: Option<String>,
        /// How long the token is valid, e.g. "1h", "30d".
        #[arg(long, default_value = "24h")]
        ttl: humantime::Duration,
    },
    /// Print a one-time link into the operator console for OPERATOR: it works once, for
    /// `--ttl`, and opens a one-hour admin session in that browser tab only.
    ConsoleLink {
        /// The operator the session is for, recorded with every action taken in it.
        #[arg(long)]
        subject: String,
        /// How long the link works before it is used, e.g. "10m" (at most 24h).
        #[arg(long, default_value = "10m")]
        ttl: humantime::Duration,
    },
    /// Check conservation and that every balance equals the journal; non-zero exit if not.
    Audit,
    /// Show each scheduled job's latest runs, next run and failures; `--run` runs every job once,
    /// now (each period's work happens once, however often this is called).
    Jobs {
        #[arg(long)]
        run: bool,
    },
    /// The configuration: `config check` prints it as resolved (secrets masked) and every
    /// problem in it; exit 1 if there is any.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Write the ledger as one consistent snapshot: every ledger table as JSON lines that
    /// `import` loads, or the journal's lines as CSV; a checksum line ends either.
    Export {
        /// Only what was recorded at or after this instant (RFC 3339, or YYYY-MM-DD for its
        /// midnight UTC): an incremental export for a warehouse, which `import` refuses.
        #[arg(long, value_parser = credits::service::export::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// jsonl (every ledger table; what `import` reads) or csv (journal lines).
        #[arg(long, default_value = "jsonl")]
        format: credits::service::export::Format,
        /// Where to write it (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Load a whole JSONL export into an empty database (FILE, or `-` for stdin), then audit
    /// it; non-zero exit if the file is refused or the audit fails.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Monthly statements: `show` prints an account's statement of a month as its JSON
    /// document; `verify` recomputes such a document from the database.
    Statement {
        #[command(subcommand)]
        command: StatementCommand,
    },
    /// Persisted GraphQL documents: the allow-list that `persisted_only` runs.
    Persisted {
        #[command(subcommand)]
        command: PersistedCommand,
    },
    /// The journal by month (PostgreSQL): `months` lists each month and where it is; `archive`
    /// moves a month that has ended out of the live tables, still read by every query.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Each month of the journal: live or archived, and its entries and lines (counted: a read
    /// of the whole journal). Also the entries outside any month's partition.
    Months,
    /// Archive MONTH (YYYY-MM, ended): detach its partitions from the live tables and keep them
    /// in the `journal_archive` schema, closed to changes; the audit, statements, history and
    /// exports still read it. Running it again finishes a run that stopped, or does nothing.
    Archive {
        #[arg(long, value_parser = parse_month)]
        month: credits::store::journal_months::Month,
    },
}

fn parse_month(text: &str) -> Result<credits::store::journal_months::Month, String> {
    credits::store::journal_months::Month::parse(text).ok_or_else(|| format!("{text:?} is not a month: write YYYY-MM"))
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the resolved configuration (defaults, file, environment; secrets masked) and every
    /// problem found in it, without starting anything or writing anything.
    Check,
}

#[derive(Debug, Subcommand)]
enum StatementCommand {
    /// Print the statement of an account for a month as one line of canonical JSON
    /// (docs/statements.md): the month in progress is as of now (on a test clock, its instant).
    Show {
        /// The account (the product's own id).
        #[arg(long)]
        account: String,
        /// The month, YYYY-MM (UTC).
        #[arg(long)]
        month: String,
    },
    /// Recompute FILE's statement (its account and month, as of its `asOf`) from the database:
    /// exit 0 printing "statement verified" when every field, the digest included, matches;
    /// else name each field that differs and exit 1.
    Verify {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PersistedCommand {
    /// Register documents as the operator's: each FILE, and each `.graphql` file under each DIR
    /// (one document per file, however many operations it holds). Prints each one's hash.
    Add {
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
    },
    /// List the registered documents: hash, origin, when, operation names.
    List {
        /// Also list the documents clients registered through automatic persisted queries.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The configuration says how to log and where traces go, so it is read first; what it
    // refuses is printed, and the command then fails with it again below.
    let config = Config::load(cli.config.as_deref()).ok();
    let format = config.as_ref().and_then(|c| c.log_format().ok()).unwrap_or(LogFormat::Text);
    let endpoint = config.as_ref().and_then(|c| c.traces().ok().flatten());
    let traces = init_logging(format, endpoint.as_ref());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = e.chain().find_map(|cause| cause.downcast_ref::<sea_orm::DbErr>().and_then(credits::db::hint)) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    };
    // After the runtime's work (a server's graceful stop, a worker's, a one-off command), so the
    // last spans, the shutdown's own among them, are sent before the process ends.
    if let Some(traces) = traces
        && let Err(e) = traces.shutdown()
    {
        eprintln!("warning: {e}");
    }
    code
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info,sqlx=warn`), as text or one JSON object
/// per line. Colours only on a terminal: in a file or a log collector they are noise around
/// every field.
///
/// With an OTLP endpoint, spans are also exported (`credits::traces`): at info level and above
/// whatever `RUST_LOG` says, so a quieter log keeps the same traces, and a debug log does not
/// send every statement to the collector.
fn init_logging(format: LogFormat, endpoint: Option<&credits::traces::TracesEndpoint>) -> Option<credits::traces::Traces> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (traces, otel, refused) = match endpoint.map(credits::traces::Traces::start) {
        None => (None, None, None),
        Some(Ok((traces, layer))) => {
            let spans = Targets::new().with_default(LevelFilter::INFO).with_target("sqlx", LevelFilter::WARN);
            (Some(traces), Some(layer.with_filter(spans)), None)
        }
        Some(Err(e)) => (None, None, Some(e)),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(false).boxed(),
    };
    tracing_subscriber::registry().with(otel).with(fmt.with_filter(filter)).init();
    match (&traces, endpoint, refused) {
        (Some(_), Some(endpoint), _) => tracing::info!(traces.url = %endpoint.shown(), "traces: exporting spans over OTLP/HTTP"),
        (_, _, Some(e)) => tracing::error!(error = %e, "traces: off, the exporter could not be built"),
        _ => tracing::debug!("traces: off (no otlp_endpoint)"),
    }
    traces
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Schema = cli.command {
        println!("{}", credits::graphql::sdl().trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Config { command: ConfigCommand::Check } = cli.command {
        let config = Config::read(cli.config.as_deref())?;
        print!("{}", credits::config_check::masked(&config));
        let problems = credits::config_check::problems(&config);
        if problems.is_empty() {
            println!("# no problems found");
            return Ok(ExitCode::SUCCESS);
        }
        for problem in &problems {
            eprintln!("problem: {problem}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    config.log_format()?;
    match cli.command {
        Command::Schema | Command::Config { .. } => unreachable!("handled above"),
        Command::Serve { bind, no_workers } => {
            if let Some(bind) = bind {
                config.bind = bind;
            }
            let settings = credits::app::Settings::from_config(&config)?;
            let (app, ledger) = credits::app::build(settings).await?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let jobs = (!no_workers).then(|| {
                let mut stopped = stopped.clone();
                let storage = credits::db::job_storage(&ledger.db);
                tokio::spawn(workers::run(ledger, storage, app.job_health(), async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }))
            });
            if no_workers {
                tracing::info!("this process runs no scheduled jobs (--no-workers): /health lists none");
            }
            app.serve(shutdown_signal()).await?;
            let _ = stop.send(true);
            if let Some(jobs) = jobs {
                jobs.await??;
            }
            tracing::info!("stopped");
        }
        Command::Worker => {
            let ledger = credits::app::ledger_from_config(&config, 8).await?;
            // A worker has no API, but its jobs' metrics are served like a server's.
            let security = credits::app::Security::from_config(&config)?;
            let metrics = credits::http::metrics_listener(security.metrics_bind.as_deref(), &ledger).await;
            let storage = credits::db::job_storage(&ledger.db);
            // No HTTP server here, so no /health: jobs falling behind and catching up show in
            // this log only (the watchdog in `workers::run`).
            tracing::info!("this process serves no HTTP, so no /health: jobs behind are reported in this log");
            workers::run(ledger, storage, workers::JobHealth::new(), shutdown_signal()).await?;
            if let Some(metrics) = metrics {
                metrics.abort();
            }
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let db = credits::db::connect(&config.database_url(), 1).await?;
            credits::db::migrate(&db).await?;
            eprintln!("migrated");
        }
        Command::Token { role, account, subject, ttl } => {
            let keys = AuthKeys::new(&config.auth_secret()?);
            let named = match role {
                Role::User => account,
                Role::Admin => subject,
                Role::Service if account.is_some() || subject.is_some() => {
                    anyhow::bail!("a service token names no account or subject")
                }
                Role::Service => None,
            };
            println!("{}", keys.issue(role, named.as_deref(), ttl.into())?);
        }
        Command::ConsoleLink { subject, ttl } => {
            let public_url = match config.links()?.public_url() {
                Some(url) => url.clone(),
                None => credits::links::parse_public_url(&format!("http://{}", config.bind)).map_err(|e| anyhow::anyhow!(e))?,
            };
            let ledger = credits::app::ledger_from_config(&config, 1).await?;
            let ttl = chrono::Duration::from_std(ttl.into())?;
            let code = ledger.create_console_link(&subject, ttl, chrono::Utc::now()).await?;
            println!("{}", credits::links::console(&public_url, &code));
        }
        Command::Jobs { run } => {
            let ledger = credits::app::ledger_from_config(&config, 4).await?;
            let now = ledger.clock.tick_instant(&ledger.db, chrono::Utc::now()).await?;
            if run {
                for job in credits::service::jobs::Job::ALL {
                    let report = ledger.run_job(job, now).await?;
                    println!("{:<24} ran: {} item(s), periods {:?}", job.name(), report.items, report.periods);
                }
            }
            // The same views the operator's API answers (`scheduledJobs`, `jobRuns`).
            for scheduled in ledger.scheduled_jobs(now).await? {
                let next = scheduled.next_start.map_or("continuous".to_string(), |at| at.to_rfc3339());
                println!("{:<24} next: {next}", scheduled.job.name());
                for r in ledger.job_runs(scheduled.job, 3).await? {
                    let error = r.last_error.as_deref().unwrap_or("-");
                    println!(
                        "  {} {:<8} items {:<6} batches {:<4} attempts {} updated {} error {error}",
                        r.period,
                        format!("{:?}", r.status).to_lowercase(),
                        r.items,
                        r.batches,
                        r.attempts,
                        r.updated_at.to_rfc3339()
                    );
                }
            }
        }
        Command::Journal { command } => {
            let ledger = credits::app::ledger_from_config(&config, 2).await?;
            if !credits::store::journal_months::is_partitioned(&ledger.db).await? {
                anyhow::bail!("this database keeps the journal in one table: months are kept and archived on PostgreSQL only");
            }
            match command {
                JournalCommand::Months => {
                    use credits::store::journal_months::{self as months, Place};
                    for row in months::months(&ledger.db).await? {
                        let place = match row.place {
                            Place::Live => "live",
                            Place::Archived => "archived",
                        };
                        println!("{}  {place:<8}  {} entries  {} lines", row.month, row.entries, row.lines);
                    }
                    println!("outside any month: {} entries", months::outside_months(&ledger.db).await?);
                }
                JournalCommand::Archive { month } => {
                    let now = ledger.clock.tick_instant(&ledger.db, chrono::Utc::now()).await?;
                    let archived = ledger.archive_journal_month(month, now).await?;
                    let record = &archived.record;
                    if archived.now {
                        println!("{month} archived: {} entries, {} lines", record.entries, record.lines);
                        eprintln!("the live journal was locked for {} ms", archived.locked.as_millis());
                    } else {
                        println!("{month} already archived: {} entries, {} lines", record.entries, record.lines);
                    }
                }
            }
        }
        Command::Persisted { command } => {
            let db = credits::db::connect(&config.database_url(), 1).await?;
            credits::db::migrate(&db).await?;
            match command {
                PersistedCommand::Add { paths } => {
                    let files = persisted_files(&paths)?;
                    for file in files {
                        let document =
                            std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                        let origin = credits::service::persisted::Origin::Operator;
                        let hash = credits::service::persisted::register(&db, &document, origin)
                            .await
                            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                        println!("{hash}  {}", file.display());
                    }
                }
                PersistedCommand::List { all } => {
                    for persisted in credits::service::persisted::list(&db, all).await? {
                        let operations = operation_names(&persisted.document);
                        println!(
                            "{}  {:<8} {}  {operations}",
                            persisted.hash,
                            persisted.origin.as_str(),
                            persisted.created_at.to_rfc3339()
                        );
                    }
                }
            }
        }
        Command::Statement { command } => {
            let ledger = credits::app::ledger_from_config(&config, 2).await?;
            match command {
                StatementCommand::Show { account, month } => {
                    let now = ledger.clock.tick_instant(&ledger.db, chrono::Utc::now()).await?;
                    let account = ledger.account(&account).await?;
                    println!("{}", ledger.statement(&account, &month, now).await?.json());
                }
                StatementCommand::Verify { file } => {
                    let text = std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                    let verification = ledger.verify_statement(text.trim_end()).await?;
                    if !verification.differences.is_empty() {
                        for difference in &verification.differences {
                            println!("differs: {difference}");
                        }
                        println!("statement does not match the database");
                        return Ok(ExitCode::FAILURE);
                    }
                    println!("statement verified");
                }
            }
        }
        Command::Export { since, format, output } => {
            let db = credits::db::connect(&config.database_url(), 1).await?;
            let now = chrono::Utc::now();
            let summary = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                    credits::service::export::export(&db, format, since, now, file).await?
                }
                None => credits::service::export::export(&db, format, since, now, std::io::stdout().lock()).await?,
            };
            eprintln!("exported {} rows, {}", summary.rows, summary.checksum);
        }
        Command::Import { file } => {
            use credits::service::export::ImportSource;
            let source = if file.as_os_str() == "-" { ImportSource::Stdin } else { ImportSource::File(file) };
            let db = credits::db::connect(&config.database_url(), 2).await?;
            let summary = credits::service::export::import(&db, &source).await?;
            for (table, rows) in &summary.tables {
                eprintln!("{:<20} {rows}", table.name());
            }
            eprintln!("imported {} rows, {}", summary.rows, summary.checksum);
            let report = credits::audit::run(&db, chrono::Utc::now()).await?;
            println!("{report}");
            if !report.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit => {
            let db = credits::db::connect(&config.database_url(), 2).await?;
            // On a test clock, balances are audited at the clock's instant.
            let now = match config.test_clock()? {
                Some(_) => credits::store::test_clock::read(&db).await?.unwrap_or_else(chrono::Utc::now),
                None => chrono::Utc::now(),
            };
            let program = credits::program::Program::load(&config.program)?;
            let report = credits::audit::run_with_program(&db, &program, now).await?;
            println!("{report}");
            if !report.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The files `persisted add` registers: each path given that is a file, and every `.graphql`
/// file under each directory given (recursively, in name order). An empty result is an error:
/// an operator who registered nothing should hear so.
fn persisted_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &std::path::Path, into: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, into)?;
            } else if path.extension().is_some_and(|e| e == "graphql") {
                into.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                anyhow::bail!("{} holds no .graphql file", path.display());
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The names of a document's operations, for `persisted list` ("(anonymous)" for one without).
fn operation_names(document: &str) -> String {
    use async_graphql::parser::types::DocumentOperations;
    match async_graphql::parser::parse_query(document).map(|d| d.operations) {
        Ok(DocumentOperations::Single(_)) => "(anonymous)".to_string(),
        Ok(DocumentOperations::Multiple(operations)) => {
            let mut names: Vec<&str> = operations.keys().map(|name| name.as_str()).collect();
            names.sort_unstable();
            names.join(",")
        }
        Err(_) => "(unparsable)".to_string(),
    }
}

#[cfg(unix)]
async fn wait_for(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives while the server or the monitor is starting
/// must not kill the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                _ = wait_for(interrupt.as_mut()) => {},
                _ = wait_for(terminate.as_mut()) => {},
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
