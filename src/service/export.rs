//! `credits export` and `credits import`: the whole ledger (or what changed since an instant) as
//! one stream, in bounded memory, and back into an empty database.
//!
//! The JSONL form (the one `import` reads), one JSON object per line:
//!
//! ```text
//! {"format":"credits-export","version":1,"since":null,"exported_at":"...","schema":"m2026...","backend":"sqlite"}
//! {"table":"accounts","row":{"id":1,"external_id":"alice","balance_micros":5000000,...}}
//! ...
//! {"checksum":"sha256:<hex>","rows":1234}
//! ```
//!
//! The checksum is the SHA-256 of every byte before its line; `rows` counts the row lines.
//! Tables come in load order (`store::export::Table::ALL`), each in id order. Amounts are the
//! stored integer micro-credits, instants RFC 3339 in UTC: nothing goes through a float.
//!
//! The CSV form is for accountants and warehouses, not for `import`: one row per journal line
//! with its entry, account and lot class, then a `# sha256:<hex> rows:N` line over the bytes
//! before it.
//!
//! Both are read inside one read-only transaction (REPEATABLE READ on PostgreSQL, a read
//! transaction on SQLite in WAL mode): the export is one consistent instant of the ledger, however
//! long it takes and whatever the server writes meanwhile. Rows are read a page at a time by id
//! and written as they come, so memory does not grow with the ledger.
//!
//! Writes and reads here are blocking `std::io` on the runtime's thread: this runs as a one-shot
//! command with nothing else scheduled beside it.

use crate::store::export::{self as rows, LedgerLine, LoadError, Table};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read, Write};

pub const FORMAT: &str = "credits-export";
pub const VERSION: u32 = 1;
/// Rows read per statement while exporting.
const PAGE_ROWS: u64 = 1000;
/// Rows per insert while importing: 20 columns at most, so at most 10,000 parameters, under
/// both databases' limits.
const BATCH_ROWS: usize = 500;
/// The longest line an import accepts. The widest row (a market job with its 2,000-character
/// input) is a few KiB; anything near this is not an export.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every ledger table, row by row: what `import` loads.
    Jsonl,
    /// Journal lines for accountants.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format {other:?}: jsonl or csv")),
        }
    }
}

/// `--since`: an RFC 3339 instant, or a date (its midnight, UTC).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default()),
        Err(_) => Err(format!("{text:?} is neither an RFC 3339 instant nor a YYYY-MM-DD date")),
    }
}

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// Set on an incremental export: only what was recorded at or after it. Not a whole ledger,
    /// so `import` refuses it.
    pub since: Option<DateTime<Utc>>,
    pub exported_at: DateTime<Utc>,
    /// The last migration of the exporting database's schema.
    pub schema: String,
    /// The database it was exported from, "sqlite" or "postgres" (for the reader; either loads
    /// into either).
    pub backend: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksumLine {
    checksum: String,
    rows: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowLine {
    table: String,
    row: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Why an import refused a file or failed. Every refusal before `NotEmpty` comes before the
/// database is touched (for a file; stdin is read once, inside the load's transaction).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a credits export: {0}")]
    NotAnExport(String),
    #[error("this is an incremental export (since {0}), not a whole ledger: import loads whole exports only")]
    Incremental(DateTime<Utc>),
    #[error("the export's schema ({0}) is newer than this binary's: import it with the version that wrote it, or a newer one")]
    UnknownSchema(String),
    #[error("the export is truncated: it has no checksum line")]
    Truncated,
    #[error("the export's checksum does not match its contents (expected {expected}, computed {computed}): it was altered or damaged")]
    ChecksumMismatch { expected: String, computed: String },
    #[error("the export says it holds {expected} rows but holds {found}")]
    RowCount { expected: u64, found: u64 },
    #[error("the export goes on after its checksum line")]
    TrailingData,
    #[error("line {line}: {reason}")]
    BadLine { line: u64, reason: String },
    #[error("the database is not empty (table {0} has rows): import loads into an empty database only")]
    NotEmpty(&'static str),
    #[error("line {line}: {source}")]
    Load { line: u64, source: LoadError },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: u64,
    pub checksum: String,
    /// Rows per table, in the order written (JSONL only).
    pub tables: Vec<(Table, u64)>,
}

/// Counts and hashes everything written through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn checksum_text(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The last migration this binary knows: the schema an export is written in.
pub fn schema_version() -> String {
    use migration::MigratorTrait;
    migration::Migrator::migrations().last().map(|m| m.name().to_string()).unwrap_or_default()
}

/// The migration that gave journal entries `balance_after_micros`; migration names sort by
/// their date and sequence, so an export whose schema sorts before it has no such field.
const BALANCE_AFTER_SINCE: &str = "m20261203_000020_add_balance_after";
/// The first schema whose journal lines carry their entry's instant (`journal_line::created_at`).
const LINE_INSTANT_SINCE: &str = "m20261204_000033_partition_journal";

fn known_schema(name: &str) -> bool {
    use migration::MigratorTrait;
    migration::Migrator::migrations().iter().any(|m| m.name() == name)
}

/// A read-only transaction that sees one instant of the database throughout.
pub(crate) async fn snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await,
        // A deferred transaction on SQLite in WAL mode reads the snapshot of its first read.
        _ => db.begin().await,
    }
}

/// Writes the ledger (or what was recorded since `since`) to `out` as `format`, then flushes it.
pub async fn export(
    db: &DatabaseConnection,
    format: Format,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    out: impl Write,
) -> Result<ExportSummary, ExportError> {
    let txn = snapshot(db).await?;
    let mut out = Hashing { inner: std::io::BufWriter::with_capacity(1 << 16, out), hasher: Sha256::new() };
    let (rows, tables) = match format {
        Format::Jsonl => write_jsonl(&txn, since, now, &mut out).await?,
        Format::Csv => (write_csv(&txn, since, &mut out).await?, Vec::new()),
    };
    // Read-only: ending it either way releases the snapshot.
    txn.rollback().await?;
    let Hashing { mut inner, hasher } = out;
    let checksum = checksum_text(hasher);
    match format {
        Format::Jsonl => {
            serde_json::to_writer(&mut inner, &ChecksumLine { checksum: checksum.clone(), rows }).map_err(std::io::Error::from)?;
            inner.write_all(b"\n")?;
        }
        Format::Csv => writeln!(inner, "# {checksum} rows:{rows}")?,
    }
    inner.flush()?;
    tracing::info!(rows, checksum = %checksum, "export written");
    Ok(ExportSummary { rows, checksum, tables })
}

async fn write_jsonl(
    txn: &DatabaseTransaction,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> Result<(u64, Vec<(Table, u64)>), ExportError> {
    let header = Header {
        format: FORMAT.to_string(),
        version: VERSION,
        since,
        exported_at: now,
        schema: schema_version(),
        backend: if txn.get_database_backend() == DbBackend::Postgres { "postgres" } else { "sqlite" }.to_string(),
    };
    serde_json::to_writer(&mut *out, &header).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    let mut total = 0;
    let mut tables = Vec::new();
    for table in Table::ALL {
        let mut after = None;
        let mut count = 0;
        let mut included = true;
        loop {
            let Some(page) = rows::page(txn, table, since, after, PAGE_ROWS).await? else {
                included = false;
                break;
            };
            for row in &page.rows {
                // Table names are plain identifiers: nothing to escape.
                writeln!(out, "{{\"table\":\"{}\",\"row\":{row}}}", table.name())?;
            }
            count += page.rows.len() as u64;
            if (page.rows.len() as u64) < PAGE_ROWS {
                break;
            }
            after = page.last_key;
        }
        if included {
            tracing::debug!(table = table.name(), rows = count, "table exported");
            tables.push((table, count));
            total += count;
        }
    }
    Ok((total, tables))
}

/// The CSV's columns: a journal line, its entry, the account's own id and the lot's class.
/// Amounts both as stored (micro-credits) and as credits with six places, exact.
pub const CSV_COLUMNS: &str = "line_id,entry_id,created_at,effective_at,account,kind,operation,lot_id,lot_class,delta_micros,delta_credits,feature,model,reason,actor";

async fn write_csv(txn: &DatabaseTransaction, since: Option<DateTime<Utc>>, out: &mut impl Write) -> Result<u64, ExportError> {
    writeln!(out, "{CSV_COLUMNS}")?;
    let mut after = None;
    let mut count = 0;
    loop {
        let page = rows::ledger_lines(txn, since, after, PAGE_ROWS).await?;
        for line in &page {
            out.write_all(csv_record(line).as_bytes())?;
        }
        count += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as u64 == PAGE_ROWS => after = Some(last.line.id),
            _ => break,
        }
    }
    Ok(count)
}

fn csv_record(l: &LedgerLine) -> String {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let credits = rust_decimal::Decimal::new(l.line.delta_micros, crate::ledger::amount::CREDIT_SCALE);
    let fields = [
        l.line.id.to_string(),
        l.entry.id.to_string(),
        at(l.entry.created_at),
        at(l.entry.effective_at),
        l.account_external_id.clone(),
        l.entry.kind.clone(),
        l.entry.operation.clone(),
        l.line.lot_id.to_string(),
        l.lot_class.clone(),
        l.line.delta_micros.to_string(),
        credits.to_string(),
        l.entry.feature.clone().unwrap_or_default(),
        l.entry.model.clone().unwrap_or_default(),
        l.entry.reason.clone().unwrap_or_default(),
        l.entry.actor.clone().unwrap_or_default(),
    ];
    let mut record = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    record.push('\n');
    record
}

/// RFC 4180: a field holding a comma, a quote or a line break is quoted, quotes doubled.
fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

/// Where `import` reads from. A file is read twice (checked whole before the database is
/// touched, then loaded); stdin once, checked while it loads inside the one transaction,
/// which a bad checksum rolls back.
#[derive(Debug, Clone)]
pub enum ImportSource {
    File(std::path::PathBuf),
    Stdin,
}

impl ImportSource {
    fn open(&self) -> Result<Box<dyn BufRead>, std::io::Error> {
        Ok(match self {
            ImportSource::File(path) => Box::new(std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?)),
            ImportSource::Stdin => Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin())),
        })
    }
}

/// What a whole, intact export holds: checked by `verify`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: Header,
    pub rows: u64,
    pub checksum: String,
}

/// Reads lines of at most `MAX_LINE_BYTES`, hashing each whole line (its newline included).
struct Lines<R: BufRead> {
    reader: R,
    hasher: Sha256,
    number: u64,
    buffer: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Lines { reader, hasher: Sha256::new(), number: 0, buffer: Vec::new() }
    }

    /// The next line (without its newline), unhashed yet; `None` at the end.
    fn next(&mut self) -> Result<Option<&str>, ImportError> {
        self.buffer.clear();
        let read = (&mut self.reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut self.buffer)?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let line = self.number;
        if self.buffer.len() as u64 > MAX_LINE_BYTES {
            return Err(ImportError::BadLine { line, reason: format!("longer than {MAX_LINE_BYTES} bytes") });
        }
        let text = std::str::from_utf8(&self.buffer).map_err(|_| ImportError::BadLine { line, reason: "not UTF-8".into() })?;
        Ok(Some(text.strip_suffix('\n').unwrap_or(text)))
    }

    /// Adds the line just read to the checksum.
    fn hash_current(&mut self) {
        self.hasher.update(&self.buffer);
    }
}

enum Parsed {
    Row(Table, serde_json::Value),
    Checksum(ChecksumLine),
}

fn parse_header(line: Option<&str>) -> Result<Header, ImportError> {
    let line = line.ok_or_else(|| ImportError::NotAnExport("the file is empty".into()))?;
    let header: Header = serde_json::from_str(line).map_err(|e| ImportError::NotAnExport(format!("its first line is no header: {e}")))?;
    if header.format != FORMAT {
        return Err(ImportError::NotAnExport(format!("format {:?}", header.format)));
    }
    if header.version != VERSION {
        return Err(ImportError::NotAnExport(format!("version {} (this binary reads {VERSION})", header.version)));
    }
    if !known_schema(&header.schema) {
        return Err(ImportError::UnknownSchema(header.schema));
    }
    if let Some(since) = header.since {
        return Err(ImportError::Incremental(since));
    }
    Ok(header)
}

/// A row line or the checksum line; rows are parsed in full only when `full` (the load), else
/// told apart by their start (the check before it, which the checksum covers anyway).
fn parse_line(text: &str, line: u64, full: bool) -> Result<Option<Parsed>, ImportError> {
    let bad = |reason: String| ImportError::BadLine { line, reason };
    if text.starts_with("{\"checksum\"") {
        let checksum: ChecksumLine = serde_json::from_str(text).map_err(|e| bad(format!("a damaged checksum line: {e}")))?;
        return Ok(Some(Parsed::Checksum(checksum)));
    }
    if !full {
        if !text.starts_with("{\"table\"") {
            return Err(bad("neither a row nor the checksum".into()));
        }
        return Ok(None);
    }
    let row: RowLine = serde_json::from_str(text).map_err(|e| bad(format!("not a row: {e}")))?;
    let table = Table::from_name(&row.table).ok_or_else(|| bad(format!("unknown table {:?}", row.table)))?;
    Ok(Some(Parsed::Row(table, row.row)))
}

/// Checks the checksum line's claims against what was read.
fn check_end<R: BufRead>(lines: &mut Lines<R>, claimed: ChecksumLine, rows: u64) -> Result<String, ImportError> {
    let computed = checksum_text(std::mem::take(&mut lines.hasher));
    if claimed.checksum != computed {
        return Err(ImportError::ChecksumMismatch { expected: claimed.checksum, computed });
    }
    if claimed.rows != rows {
        return Err(ImportError::RowCount { expected: claimed.rows, found: rows });
    }
    if lines.next()?.is_some() {
        return Err(ImportError::TrailingData);
    }
    Ok(computed)
}

/// Reads a whole export and checks it: a header this binary reads, of a whole ledger, and a
/// checksum line that matches every byte before it and the number of rows. Writes nothing.
pub fn verify(reader: impl BufRead) -> Result<Verified, ImportError> {
    let mut lines = Lines::new(reader);
    let header = parse_header(lines.next()?)?;
    lines.hash_current();
    let mut rows = 0;
    loop {
        let number = lines.number + 1;
        let Some(text) = lines.next()? else { return Err(ImportError::Truncated) };
        match parse_line(text, number, false)? {
            Some(Parsed::Checksum(claimed)) => {
                let checksum = check_end(&mut lines, claimed, rows)?;
                return Ok(Verified { header, rows, checksum });
            }
            _ => {
                lines.hash_current();
                rows += 1;
            }
        }
    }
}

/// What an import loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    pub header: Header,
    pub rows: u64,
    pub checksum: String,
    pub tables: Vec<(Table, u64)>,
}

/// Loads an export into `db`, which must hold no ledger row. A file is verified whole first,
/// before anything is written; then the schema is brought up to date and every row is inserted in batches inside one transaction, which
/// commits only once the checksum matched (so a failure anywhere leaves the database as it was).
/// On PostgreSQL the id sequences are moved past the ids loaded. The caller audits the result.
pub async fn import(db: &DatabaseConnection, source: &ImportSource) -> Result<ImportSummary, ImportError> {
    if let ImportSource::File(_) = source {
        let verified = verify(source.open()?)?;
        tracing::info!(rows = verified.rows, checksum = %verified.checksum, "export verified");
    }
    crate::db::migrate(db).await?;
    let txn = db
        .begin_with_options(TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() })
        .await?;
    for table in Table::ALL {
        if !rows::is_empty(&txn, table).await? {
            return Err(ImportError::NotEmpty(table.name()));
        }
    }
    let mut lines = Lines::new(source.open()?);
    let header = parse_header(lines.next()?)?;
    lines.hash_current();
    let mut total = 0;
    let mut tables: Vec<(Table, u64)> = Vec::new();
    let mut batch: Vec<serde_json::Value> = Vec::with_capacity(BATCH_ROWS);
    let mut current: Option<Table> = None;
    loop {
        let number = lines.number + 1;
        let Some(text) = lines.next()? else { return Err(ImportError::Truncated) };
        match parse_line(text, number, true)? {
            Some(Parsed::Row(table, row)) => {
                lines.hash_current();
                if current != Some(table) {
                    if let Some(previous) = current {
                        if table < previous {
                            return Err(ImportError::BadLine {
                                line: number,
                                reason: format!("a {} row after {} rows: tables come in load order", table.name(), previous.name()),
                            });
                        }
                        flush(&txn, previous, &mut batch, number).await?;
                    }
                    current = Some(table);
                    tables.push((table, 0));
                }
                batch.push(row);
                total += 1;
                if let Some((_, count)) = tables.last_mut() {
                    *count += 1;
                }
                if batch.len() >= BATCH_ROWS {
                    flush(&txn, table, &mut batch, number).await?;
                }
            }
            Some(Parsed::Checksum(claimed)) => {
                if let Some(table) = current {
                    flush(&txn, table, &mut batch, number).await?;
                }
                let checksum = check_end(&mut lines, claimed, total)?;
                if header.schema.as_str() < BALANCE_AFTER_SINCE {
                    // An export from before entries carried their balance: every entry loaded
                    // with 0, so each gets the running sum the migration gave old entries.
                    crate::store::journal::recompute_balances_after(&txn).await?;
                }
                if header.schema.as_str() < LINE_INSTANT_SINCE {
                    // Lines loaded with a placeholder instant take their entry's.
                    crate::store::journal::fill_line_instants(&txn).await?;
                }
                for table in Table::ALL {
                    rows::reset_sequence(&txn, table).await?;
                }
                txn.commit().await?;
                tracing::info!(rows = total, "export imported");
                return Ok(ImportSummary { header, rows: total, checksum, tables });
            }
            None => unreachable!("a full parse yields a row or the checksum"),
        }
    }
}

async fn flush(txn: &DatabaseTransaction, table: Table, batch: &mut Vec<serde_json::Value>, line: u64) -> Result<(), ImportError> {
    let rows = std::mem::replace(batch, Vec::with_capacity(BATCH_ROWS));
    if table == Table::JournalEntries {
        // On PostgreSQL's journal by month, the months of these entries get their partitions
        // first (their lines follow them), rather than all landing in the default partition.
        let instants = rows.iter().filter_map(|row| row.get("created_at")?.as_str()?.parse::<DateTime<Utc>>().ok());
        if let (Some(first), Some(last)) = instants.fold((None, None), |(lo, hi): (Option<DateTime<Utc>>, Option<DateTime<Utc>>), t| {
            (Some(lo.map_or(t, |lo| lo.min(t))), Some(hi.map_or(t, |hi| hi.max(t))))
        }) {
            use crate::store::journal_months::{Month, ensure};
            ensure(txn, Month::of(first), Month::of(last)).await.map_err(|e| ImportError::Load { line, source: e.into() })?;
        }
    }
    rows::insert_batch(txn, table, rows).await.map_err(|source| ImportError::Load { line, source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_text(rows: &[&str]) -> String {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            since: None,
            exported_at: Utc::now(),
            schema: schema_version(),
            backend: "sqlite".into(),
        };
        let mut body = serde_json::to_string(&header).unwrap() + "\n";
        for row in rows {
            body.push_str(row);
            body.push('\n');
        }
        let checksum = format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())));
        body + &serde_json::to_string(&ChecksumLine { checksum, rows: rows.len() as u64 }).unwrap() + "\n"
    }

    #[test]
    fn an_intact_export_verifies() {
        let text = export_text(&[r#"{"table":"accounts","row":{}}"#, r#"{"table":"lots","row":{}}"#]);
        let verified = verify(text.as_bytes()).unwrap();
        assert_eq!(verified.rows, 2);
        assert_eq!(verified.header.version, VERSION);
    }

    #[test]
    fn any_changed_byte_fails_the_checksum() {
        let text = export_text(&[r#"{"table":"accounts","row":{"balance_micros":5}}"#]);
        let tampered = text.replace("\"balance_micros\":5", "\"balance_micros\":6");
        assert!(matches!(verify(tampered.as_bytes()), Err(ImportError::ChecksumMismatch { .. })));
    }

    #[test]
    fn a_cut_export_is_truncated_and_extra_lines_are_refused() {
        let text = export_text(&[r#"{"table":"accounts","row":{}}"#]);
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(matches!(verify(cut.as_bytes()), Err(ImportError::Truncated)));
        let longer = text.clone() + "{\"table\":\"accounts\",\"row\":{}}\n";
        assert!(matches!(verify(longer.as_bytes()), Err(ImportError::TrailingData)));
        assert!(matches!(verify(&b""[..]), Err(ImportError::NotAnExport(_))));
    }

    #[test]
    fn a_wrong_row_count_is_refused() {
        let text = export_text(&[r#"{"table":"accounts","row":{}}"#]);
        let body_end = text.rfind("{\"checksum\"").unwrap();
        let (body, _) = text.split_at(body_end);
        let checksum = format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())));
        let wrong = format!("{body}{}\n", serde_json::to_string(&ChecksumLine { checksum, rows: 7 }).unwrap());
        assert!(matches!(verify(wrong.as_bytes()), Err(ImportError::RowCount { expected: 7, found: 1 })));
    }

    #[test]
    fn an_incremental_or_foreign_header_is_refused() {
        let text = export_text(&[]);
        let since = text.replacen("\"since\":null", "\"since\":\"2026-01-01T00:00:00Z\"", 1);
        assert!(matches!(verify(since.as_bytes()), Err(ImportError::Incremental(_))));
        let newer = text.replacen(&schema_version(), "m29990101_000001_from_the_future", 1);
        assert!(matches!(verify(newer.as_bytes()), Err(ImportError::UnknownSchema(_))));
    }

    #[test]
    fn since_takes_an_instant_or_a_date() {
        assert_eq!(parse_since("2026-12-01").unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(parse_since("2026-12-01T10:00:00+02:00").unwrap().to_rfc3339(), "2026-12-01T08:00:00+00:00");
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
