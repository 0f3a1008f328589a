//! The journal's months on PostgreSQL (migration `m20261204_000033_partition_journal`): the
//! partitions ahead of time, what each month holds, and archiving a month that has ended.
//!
//! Archiving is detach-and-keep: a month's two partitions leave the live tables and join
//! `journal_archive.entries` and `journal_archive.lines`, where a trigger refuses every change.
//! The views `journal_entries_all` and `journal_lines_all` read live and archived months as one,
//! so the audit, balances at an instant, statements, history and exports see archived months as
//! before. What a month held when it was archived is kept in `journal_archive.months`, and the
//! audit recounts it (`audit::Check::ArchivedMonths`).
//!
//! SQLite keeps one table each: these functions say so (`is_partitioned` false) and do nothing.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait};
use std::fmt;

/// Entries of every month, live and archived (a view; on SQLite the table itself).
pub const ENTRIES_ALL: &str = "journal_entries_all";
/// Lines of every month, live and archived.
pub const LINES_ALL: &str = "journal_lines_all";

/// Months created ahead of the current one, so a month's first entry finds its partition even
/// when the job that prepares them has not run for weeks.
pub const MONTHS_AHEAD: u32 = 2;

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    pub fn of(instant: DateTime<Utc>) -> Month {
        Month { year: instant.year(), month: instant.month() }
    }

    /// "YYYY-MM", as operators write it.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        let (year, month) = (year.parse().ok()?, month.parse().ok()?);
        ((1970..=9998).contains(&year) && (1..=12).contains(&month) && text.len() == 7).then_some(Month { year, month })
    }

    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { year: self.year, month: self.month + 1 } }
    }

    pub fn first_instant(self) -> DateTime<Utc> {
        let day = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a month's first day");
        Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
    }

    /// The partitions' suffix: `journal_entries_y2026m12`.
    fn suffix(self) -> String {
        format!("y{:04}m{:02}", self.year, self.month)
    }

    fn from_suffix(suffix: &str) -> Option<Month> {
        let rest = suffix.strip_prefix('y')?;
        let (year, month) = rest.split_once('m')?;
        Some(Month { year: year.parse().ok()?, month: month.parse().ok()? })
    }

    /// The partition bound, as PostgreSQL reads it.
    fn bounds(self) -> String {
        format!("FOR VALUES FROM ('{}') TO ('{}')", literal(self.first_instant()), literal(self.next().first_instant()))
    }

    fn range_sql(self) -> String {
        format!(
            "created_at >= TIMESTAMPTZ '{}' AND created_at < TIMESTAMPTZ '{}'",
            literal(self.first_instant()),
            literal(self.next().first_instant())
        )
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn literal(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%d %H:%M:%S+00").to_string()
}

/// Whether this database keeps the journal by month (PostgreSQL after the migration).
pub async fn is_partitioned(conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(false);
    }
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT relkind = 'p' FROM pg_class WHERE relname = 'journal_entries' AND relnamespace = 'public'::regnamespace",
        ))
        .await?;
    Ok(row.map(|r| r.try_get_by_index::<bool>(0)).transpose()?.unwrap_or(false))
}

/// Where a month's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Partitions of the live tables.
    Live,
    /// Partitions of `journal_archive`.
    Archived,
}

/// A month of the journal and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRow {
    pub month: Month,
    pub place: Place,
    pub entries: i64,
    pub lines: i64,
}

/// The partitions of the entries table (live or archived), by month.
async fn partitions(conn: &impl ConnectionTrait, parent: &str) -> Result<Vec<Month>, DbErr> {
    let sql = format!(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{parent}'::regclass ORDER BY c.relname"
    );
    let rows = conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    let mut months = Vec::new();
    for row in rows {
        let name: String = row.try_get_by_index(0)?;
        if let Some(month) = name.strip_prefix("journal_entries_").and_then(Month::from_suffix) {
            months.push(month);
        }
    }
    Ok(months)
}

async fn count(conn: &impl ConnectionTrait, sql: String) -> Result<i64, DbErr> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// Every month with partitions, oldest first, with its rows counted (a read of each month's
/// entries and lines: for operators, not for a request).
pub async fn months(conn: &impl ConnectionTrait) -> Result<Vec<MonthRow>, DbErr> {
    let mut rows = Vec::new();
    for (parent, schema, place) in
        [("journal_entries", "public", Place::Live), ("journal_archive.entries", "journal_archive", Place::Archived)]
    {
        for month in partitions(conn, parent).await? {
            let suffix = month.suffix();
            let entries = count(conn, format!("SELECT COUNT(*) FROM {schema}.journal_entries_{suffix}")).await?;
            let lines = count(conn, format!("SELECT COUNT(*) FROM {schema}.journal_lines_{suffix}")).await?;
            rows.push(MonthRow { month, place, entries, lines });
        }
    }
    rows.sort_by_key(|r| r.month);
    Ok(rows)
}

/// Entries in the default partition: recorded in a month that had no partition (a test clock
/// years ahead, an import of old months). Correct where they are, but not archivable.
pub async fn outside_months(conn: &impl ConnectionTrait) -> Result<i64, DbErr> {
    count(conn, "SELECT COUNT(*) FROM journal_entries_default".to_string()).await
}

/// The advisory lock that makes the changes of the journal's partitions one at a time: several
/// processes run `PrepareJournalMonths` (and a test clock's advance runs it in each), and two
/// `CREATE TABLE IF NOT EXISTS` of one partition at once fail on the catalog's unique keys.
const PARTITIONS_LOCK: i64 = 0x006a_6f75_726e_616c;

/// Takes `PARTITIONS_LOCK` until the caller's transaction ends.
async fn one_at_a_time(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({PARTITIONS_LOCK})")).await?;
    Ok(())
}

/// Creates the partitions of `from` through `through` that do not exist yet and returns the
/// months that got one. A month already archived is left alone, and so is a month some of whose
/// rows sit in the default partition (PostgreSQL would refuse the partition): those stay in the
/// default partition, where they are read as any other. Nothing on SQLite.
///
/// Each partition is made in a transaction of its own (a savepoint inside the caller's, if it
/// has one), holding one table's lock at a time: creating a partition locks its table against
/// every read and write, and a transaction holding both tables' locks deadlocked with a
/// capture (which reads the hold's lines, then writes an entry) in the fleet test. Lines come
/// first: until its entries' partition exists a month's entries go to the default partition,
/// and their lines then find theirs. A partition whose locks were not had in time
/// (`PARTITION_LOCK_TIMEOUT_MS`) is tried again, up to `PARTITION_ATTEMPTS` times.
pub async fn ensure<C: ConnectionTrait + TransactionTrait>(conn: &C, from: Month, through: Month) -> Result<Vec<Month>, DbErr> {
    if !is_partitioned(conn).await? {
        return Ok(Vec::new());
    }
    let mut created = Vec::new();
    let mut month = from;
    while month <= through {
        let mut made = false;
        for table in ["journal_lines", "journal_entries"] {
            let mut attempt = 1;
            made |= loop {
                match create_partition(conn, table, month).await {
                    Err(e) if attempt < PARTITION_ATTEMPTS && waited_too_long(&e) => {
                        tracing::info!(%month, table, attempt, error = %e, "a journal partition waits for its locks; trying again");
                        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
                        attempt += 1;
                    }
                    other => break other?,
                }
            };
        }
        if made {
            created.push(month);
        }
        month = month.next();
    }
    Ok(created)
}

/// How long making a partition waits for a lock before it gives up and tries again. Below
/// PostgreSQL's default `deadlock_timeout` (1 s): should it wait in a cycle after all, it is the
/// one to give up, before PostgreSQL picks a spend to break the cycle.
pub const PARTITION_LOCK_TIMEOUT_MS: u32 = 500;

/// Tries of one partition before its error is the answer (the hourly job then fails, and runs
/// again; the months are made `MONTHS_AHEAD` of need).
const PARTITION_ATTEMPTS: u32 = 8;

/// A lock not had within `lock_timeout` (55P03), or this transaction chosen to break a deadlock
/// (40P01): nothing was changed, and trying again can succeed.
pub fn waited_too_long(err: &DbErr) -> bool {
    matches!(super::db_error_code(err).as_deref(), Some("55P03" | "40P01"))
}

/// A setting's value now (`current_setting`).
async fn setting(conn: &impl ConnectionTrait, name: &str) -> Result<String, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT current_setting($1)", [name.into()]))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("no value for {name}")))?;
    row.try_get_by_index(0)
}

/// The table a partition's foreign key points at: creating the partition adds the key's
/// triggers to it, which takes that table's SHARE ROW EXCLUSIVE lock.
fn referenced(table: &str) -> &'static str {
    if table == "journal_lines" { "lots" } else { "accounts" }
}

/// `table`'s partition of `month`, unless it exists (live or archived) or rows of the month sit
/// in the default partition; true when it was made.
///
/// The locks come in the writers' order. A posting updates `accounts` and `lots`, then inserts
/// into the journal; `CREATE TABLE ... PARTITION OF` locks the journal's table first, then (for
/// the foreign key) the referenced table, so a posting between its two steps and the creation
/// waited on each other (the fleet test's deadlocks, at every month's start). The referenced
/// table is locked first here: postings already past it finish, later ones wait for the
/// creation, which is quick.
async fn create_partition<C: ConnectionTrait + TransactionTrait>(conn: &C, table: &str, month: Month) -> Result<bool, DbErr> {
    let txn = conn.begin().await?;
    one_at_a_time(&txn).await?;
    // `SET LOCAL` inside a savepoint (an import makes its months in its own transaction) would
    // last until that transaction's end: the caller's setting is put back before committing.
    let caller_timeout = setting(&txn, "lock_timeout").await?;
    txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT_MS}ms'")).await?;
    let name = format!("{table}_{}", month.suffix());
    let exists = count(&txn, format!("SELECT COUNT(*) FROM pg_class WHERE relname = '{name}' AND relkind IN ('r', 'p')")).await? > 0;
    let crowded = !exists
        && count(&txn, format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table}_default WHERE {} LIMIT 1) AS d", month.range_sql())).await? > 0;
    if crowded {
        tracing::warn!(%month, table, "journal rows of this month sit in the default partition; no partition is made for it");
    }
    let make = !exists && !crowded;
    if make {
        txn.execute_unprepared(&format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", referenced(table))).await?;
        txn.execute_unprepared(&format!("CREATE TABLE {name} PARTITION OF {table} {}", month.bounds())).await?;
    }
    let restore = "SELECT set_config('lock_timeout', $1, true)";
    txn.query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, restore, [caller_timeout.into()])).await?;
    txn.commit().await?;
    Ok(make)
}

/// What an archived month held when it was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMonth {
    pub month: Month,
    pub entries: i64,
    pub lines: i64,
    pub amount_micros: i64,
    pub line_micros: i64,
    pub archived_at: DateTime<Utc>,
}

/// Sums over one month's entries and lines in `schema`: (entries, lines, their amounts).
async fn tally(conn: &impl ConnectionTrait, schema: &str, month: Month) -> Result<(i64, i64, i64, i64), DbErr> {
    let suffix = month.suffix();
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM {schema}.journal_entries_{suffix}), (SELECT COUNT(*) FROM {schema}.journal_lines_{suffix}), \
         (SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM {schema}.journal_entries_{suffix}), \
         (SELECT CAST(COALESCE(SUM(delta_micros), 0) AS BIGINT) FROM {schema}.journal_lines_{suffix})"
    );
    let row =
        conn.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?.ok_or_else(|| DbErr::Custom("no tally".into()))?;
    Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?))
}

/// The archived months as recorded, oldest first.
pub async fn archived(conn: &impl ConnectionTrait) -> Result<Vec<ArchivedMonth>, DbErr> {
    if !is_partitioned(conn).await? {
        return Ok(Vec::new());
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_char(month, 'YYYY-MM'), entries, lines, amount_micros, line_micros, archived_at FROM journal_archive.months ORDER BY month",
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let month: String = row.try_get_by_index(0)?;
            Ok(ArchivedMonth {
                month: Month::parse(&month).ok_or_else(|| DbErr::Custom(format!("an archived month named {month}")))?,
                entries: row.try_get_by_index(1)?,
                lines: row.try_get_by_index(2)?,
                amount_micros: row.try_get_by_index(3)?,
                line_micros: row.try_get_by_index(4)?,
                archived_at: row.try_get_by_index(5)?,
            })
        })
        .collect()
}

/// An archived month whose partitions no longer hold what they held when it was archived
/// (detached, dropped, or changed with the trigger disabled): (what was recorded, what is there).
pub async fn archived_months_changed(conn: &impl ConnectionTrait) -> Result<Vec<(ArchivedMonth, (i64, i64, i64, i64))>, DbErr> {
    if !is_partitioned(conn).await? {
        return Ok(Vec::new());
    }
    let present = partitions(conn, "journal_archive.entries").await?;
    let mut changed = Vec::new();
    for recorded in archived(conn).await? {
        let now = if present.contains(&recorded.month) { tally(conn, "journal_archive", recorded.month).await? } else { (0, 0, 0, 0) };
        if now != (recorded.entries, recorded.lines, recorded.amount_micros, recorded.line_micros) {
            changed.push((recorded, now));
        }
    }
    Ok(changed)
}

/// Where archiving a month stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveState {
    /// The month has live partitions.
    Live,
    /// Its partitions are archived but what they held is not recorded yet (a run that stopped
    /// between its two steps).
    Unrecorded,
    /// Archived and recorded.
    Archived,
    /// No partition: nothing was recorded that month, or its rows are in the default partition.
    Absent,
}

pub async fn archive_state(conn: &impl ConnectionTrait, month: Month) -> Result<ArchiveState, DbErr> {
    if partitions(conn, "journal_entries").await?.contains(&month) {
        return Ok(ArchiveState::Live);
    }
    if !partitions(conn, "journal_archive.entries").await?.contains(&month) {
        return Ok(ArchiveState::Absent);
    }
    let recorded = archived(conn).await?.iter().any(|a| a.month == month);
    Ok(if recorded { ArchiveState::Archived } else { ArchiveState::Unrecorded })
}

/// Step one of archiving, outside the step that locks the journal: a CHECK on each of the
/// month's partitions that says what their partition bound says, validated while spends go on
/// (VALIDATE takes a lock that does not stop writes). Attaching a table that carries such a
/// CHECK to the archive skips reading it, so step two reads nothing.
pub async fn prepare_archive(conn: &impl ConnectionTrait, month: Month) -> Result<(), DbErr> {
    let suffix = month.suffix();
    for table in ["journal_entries", "journal_lines"] {
        let partition = format!("{table}_{suffix}");
        let constraint = format!("{partition}_month");
        let exists = count(conn, format!("SELECT COUNT(*) FROM pg_constraint WHERE conname = '{constraint}'")).await? > 0;
        if !exists {
            conn.execute_unprepared(&format!(
                "ALTER TABLE {partition} ADD CONSTRAINT {constraint} CHECK ({}) NOT VALID",
                month.range_sql()
            ))
            .await?;
        }
        conn.execute_unprepared(&format!("ALTER TABLE {partition} VALIDATE CONSTRAINT {constraint}")).await?;
    }
    Ok(())
}

/// How long step two waits for a lock before it gives up (`lock_timeout`, SQLSTATE 55P03): a
/// lock request waiting in the queue stops every spend behind it, so it must not wait long on a
/// long transaction. The caller tries again.
pub const ARCHIVE_LOCK_TIMEOUT_MS: u32 = 2000;

/// Step two, in the caller's transaction: the month's partitions leave the live tables and join
/// the archive, under the journal's exclusive lock for as long as the catalog changes take (no
/// row is read: no foreign key to check, and the CHECK of step one proves the bound).
///
/// The locks are taken first, in the order a spend takes them (accounts, lots, then the
/// journal). Detaching a partition turns its foreign keys to `accounts` and `lots` into keys of
/// its own, which locks those tables against writes; taken only then, while a spend that had
/// updated a lot waited for the journal this step held, it deadlocked
/// (`tests/journal_months.rs`, `spends_during_an_archive_all_succeed`).
pub async fn detach_to_archive(conn: &impl ConnectionTrait, month: Month) -> Result<(), DbErr> {
    one_at_a_time(conn).await?;
    for sql in [
        format!("SET LOCAL lock_timeout = '{ARCHIVE_LOCK_TIMEOUT_MS}ms'"),
        "LOCK TABLE accounts, lots IN SHARE ROW EXCLUSIVE MODE".to_string(),
        "LOCK TABLE journal_entries, journal_lines IN ACCESS EXCLUSIVE MODE".to_string(),
    ] {
        conn.execute_unprepared(&sql).await?;
    }
    let suffix = month.suffix();
    let bounds = month.bounds();
    for (table, archive) in [("journal_lines", "lines"), ("journal_entries", "entries")] {
        let partition = format!("{table}_{suffix}");
        for sql in [
            format!("ALTER TABLE {table} DETACH PARTITION {partition}"),
            format!("ALTER TABLE {partition} SET SCHEMA journal_archive"),
            format!("ALTER TABLE journal_archive.{partition} ALTER COLUMN id DROP DEFAULT"),
            format!("ALTER TABLE journal_archive.{archive} ATTACH PARTITION journal_archive.{partition} {bounds}"),
        ] {
            conn.execute_unprepared(&sql).await?;
        }
    }
    Ok(())
}

/// Step three: what the archived month holds, counted now that nothing can change it, kept for
/// the audit.
pub async fn record_archived(conn: &impl ConnectionTrait, month: Month, now: DateTime<Utc>) -> Result<ArchivedMonth, DbErr> {
    let (entries, lines, amount_micros, line_micros) = tally(conn, "journal_archive", month).await?;
    let sql = format!(
        "INSERT INTO journal_archive.months (month, entries, lines, amount_micros, line_micros, archived_at) \
         VALUES (DATE '{month}-01', {entries}, {lines}, {amount_micros}, {line_micros}, TIMESTAMPTZ '{}') ON CONFLICT (month) DO NOTHING",
        now.to_rfc3339()
    );
    conn.execute_unprepared(&sql).await?;
    Ok(ArchivedMonth { month, entries, lines, amount_micros, line_micros, archived_at: now })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_print_and_step() {
        let december = Month::parse("2026-12").unwrap();
        assert_eq!(december.to_string(), "2026-12");
        assert_eq!(december.next(), Month { year: 2027, month: 1 });
        assert_eq!(december.suffix(), "y2026m12");
        assert_eq!(Month::from_suffix("y2026m12"), Some(december));
        assert_eq!(december.first_instant().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(december.bounds(), "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')");
        for bad in ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "2026-01-01"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }
}
