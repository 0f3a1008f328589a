//! The audit: over the whole database, every lot's remaining equals its journal lines, every
//! entry equals the sum of its lines, every cached balance equals the journal, and credits are
//! conserved (domain.md §2). Lots past expiry that the worker has not written off yet are
//! counted and accepted: reads exclude them already.

use crate::program::Program;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use std::fmt;

#[derive(Debug, Default)]
pub struct AuditReport {
    pub accounts: i64,
    pub lots: i64,
    pub entries: i64,
    pub pending_expiry_lots: i64,
    /// Credits held by open reservations: out of the lots, not yet spent or given back.
    pub held_micros: i128,
    pub problems: Vec<String>,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "accounts: {}  lots: {}  journal entries: {}", self.accounts, self.lots, self.entries)?;
        writeln!(f, "lots past expiry awaiting write-off (accepted): {}", self.pending_expiry_lots)?;
        let held = rust_decimal::Decimal::from_i128_with_scale(self.held_micros, crate::ledger::amount::CREDIT_SCALE).normalize();
        writeln!(f, "held by open reservations: {held}")?;
        if self.problems.is_empty() {
            write!(f, "OK: conservation holds and every balance equals the journal")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            for problem in &self.problems {
                writeln!(f, "- {problem}")?;
            }
            Ok(())
        }
    }
}

/// The most problems listed of each kind; the count of the rest is reported.
const MAX_LISTED: usize = 50;

async fn rows(db: &DatabaseConnection, sql: &str) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<i64, DbErr> {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// The sum of `column` over `from` (a table and its conditions), exact over any number of rows:
/// each value is split into its high and low 32 bits, which sum without overflow in an i64 for
/// up to 2^31 rows each, on SQLite (whose `SUM` fails on overflow) and PostgreSQL alike, and the
/// halves are joined in an i128.
pub async fn wide_sum(db: &DatabaseConnection, column: &str, from: &str) -> Result<i128, DbErr> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(({column}) >> 32), 0) AS BIGINT), CAST(COALESCE(SUM(({column}) & 4294967295), 0) AS BIGINT) FROM {from}"
    );
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?;
    let Some(row) = row else { return Ok(0) };
    let (high, low): (i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    Ok(i128::from(high) * (1i128 << 32) + i128::from(low))
}

/// The row-level checks, over the whole database or one account's rows (`account`, the ledger's
/// id): each query lists (id, stored, what the journal says) for the rows that disagree.
fn checks(backend: DbBackend, account: Option<i64>) -> [(&'static str, String); 13] {
    // An integer from our own database, never user text, so it is written into the SQL.
    let only = |column: &str| account.map_or(String::new(), |id| format!(" AND {column} = {id}"));
    // Where a scope (a JSON array of names without quotes in them) names a feature.
    let position = if backend == DbBackend::Postgres { "strpos" } else { "instr" };
    [
        (
            "held reservation differs from its hold entry",
            format!(
                "SELECT r.id, r.amount_micros, -je.amount_micros FROM reservations r JOIN journal_entries_all je ON je.id = r.hold_entry_id \
                 WHERE r.status = 'held' AND (je.kind <> 'hold' OR je.account_id <> r.account_id OR je.amount_micros <> -r.amount_micros){}",
                only("r.account_id")
            ),
        ),
        (
            "lot remaining differs from its journal lines",
            format!(
                "SELECT l.id, l.remaining_micros, CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT) FROM lots l \
                 LEFT JOIN journal_lines_all jl ON jl.lot_id = l.id WHERE 1 = 1{} GROUP BY l.id, l.remaining_micros \
                 HAVING l.remaining_micros <> CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT)",
                only("l.account_id")
            ),
        ),
        (
            // A lot is made by a GRANT, or by the line into it of the ROLLOVER or GIFT_RECEIVED
            // that made it.
            "lot granted differs from its grant line",
            format!(
                "SELECT l.id, l.granted_micros, CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT) FROM lots l \
                 LEFT JOIN journal_lines_all jl ON jl.lot_id = l.id \
                 LEFT JOIN journal_entries_all je ON je.id = jl.entry_id \
                 AND (je.kind = 'grant' OR (je.kind IN ('rollover', 'gift_received') AND jl.delta_micros > 0)) \
                 WHERE (je.id IS NOT NULL OR jl.id IS NULL){} GROUP BY l.id, l.granted_micros \
                 HAVING l.granted_micros <> CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT)",
                only("l.account_id")
            ),
        ),
        (
            "journal entry differs from the sum of its lines",
            format!(
                "SELECT je.id, je.amount_micros, CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT) FROM journal_entries_all je \
                 LEFT JOIN journal_lines_all jl ON jl.entry_id = je.id WHERE 1 = 1{} GROUP BY je.id, je.amount_micros \
                 HAVING je.amount_micros <> CAST(COALESCE(SUM(jl.delta_micros), 0) AS BIGINT)",
                only("je.account_id")
            ),
        ),
        (
            "cached balance differs from the journal",
            format!(
                "SELECT a.id, a.balance_micros, CAST(COALESCE((SELECT SUM(je.amount_micros) FROM journal_entries_all je \
                 WHERE je.account_id = a.id), 0) AS BIGINT) FROM accounts a \
                 WHERE a.balance_micros <> CAST(COALESCE((SELECT SUM(je.amount_micros) FROM journal_entries_all je WHERE je.account_id = a.id), 0) AS BIGINT){}",
                only("a.id")
            ),
        ),
        (
            "cached balance differs from the sum of lots",
            format!(
                "SELECT a.id, a.balance_micros, CAST(COALESCE((SELECT SUM(l.remaining_micros) FROM lots l WHERE l.account_id = a.id), 0) AS BIGINT) \
                 FROM accounts a \
                 WHERE a.balance_micros <> CAST(COALESCE((SELECT SUM(l.remaining_micros) FROM lots l WHERE l.account_id = a.id), 0) AS BIGINT){}",
                only("a.id")
            ),
        ),
        (
            // A rollover mints nothing: one line out of a lot, the same amount into another.
            "rollover entry is not one move between two lots",
            format!(
                "SELECT je.id, je.amount_micros, 0 FROM journal_entries_all je WHERE je.kind = 'rollover' \
                 AND (je.amount_micros <> 0 OR (SELECT COUNT(*) FROM journal_lines_all jl WHERE jl.entry_id = je.id) <> 2){}",
                only("je.account_id")
            ),
        ),
        (
            // `ledger::rollover`: only a plan lot carries, into a ROLLOVER lot of the same account
            // and class, never more than the plan lot was granted (so never a rollover again).
            "rollover lot not carried from a plan lot of its account",
            format!(
                "SELECT n.id, n.granted_micros, o.granted_micros FROM journal_entries_all je \
                 JOIN journal_lines_all jin ON jin.entry_id = je.id AND jin.delta_micros > 0 JOIN lots n ON n.id = jin.lot_id \
                 JOIN journal_lines_all jout ON jout.entry_id = je.id AND jout.delta_micros < 0 JOIN lots o ON o.id = jout.lot_id \
                 WHERE je.kind = 'rollover' AND (n.source <> 'rollover' OR o.origin_kind IS NULL OR o.origin_kind <> 'plan' \
                 OR n.account_id <> o.account_id OR n.account_id <> je.account_id OR n.class <> o.class \
                 OR n.granted_micros > o.granted_micros){}",
                only("je.account_id")
            ),
        ),
        (
            // A gift mints nothing (`service::gifts`): a GIFT_RECEIVED entry's lines go into GIFT
            // lots (paid, unscoped) whose origin is a GIFT_SENT entry of another account that
            // took exactly as much. (id: the received entry; stored: its amount; expected: what
            // the sent entry took, 0 when there is none.)
            "gift received differs from what was sent",
            format!(
                "SELECT je.id, je.amount_micros, COALESCE(-s.amount_micros, 0) FROM journal_entries_all je \
                 JOIN journal_lines_all jl ON jl.entry_id = je.id JOIN lots l ON l.id = jl.lot_id \
                 LEFT JOIN journal_entries_all s ON l.origin_kind = 'gift' AND CAST(s.id AS TEXT) = l.origin_id AND s.kind = 'gift_sent' \
                 WHERE je.kind = 'gift_received' AND (s.id IS NULL OR s.account_id = je.account_id OR s.amount_micros <> -je.amount_micros \
                 OR l.source <> 'gift' OR l.class <> 'paid' OR l.features IS NOT NULL OR jl.delta_micros <= 0){}",
                only("je.account_id")
            ),
        ),
        (
            "lot out of bounds or open flag wrong",
            format!(
                "SELECT id, remaining_micros, granted_micros FROM lots WHERE (remaining_micros < 0 OR remaining_micros > granted_micros \
                 OR (remaining_micros = 0 AND open) OR (remaining_micros > 0 AND NOT open)){}",
                only("account_id")
            ),
        ),
        (
            // Before its start a lot may only be voided or ended by an operator: no use takes
            // from it. (id: the journal line; stored: what it took.)
            "lot drawn before its start",
            format!(
                "SELECT jl.id, jl.delta_micros, 0 FROM journal_lines_all jl JOIN lots l ON l.id = jl.lot_id \
                 JOIN journal_entries_all je ON je.id = jl.entry_id \
                 WHERE l.effective_at IS NOT NULL AND jl.delta_micros < 0 AND je.created_at < l.effective_at \
                 AND je.kind NOT IN ('void', 'expire'){}",
                only("l.account_id")
            ),
        ),
        (
            // No foreign key says it on PostgreSQL's journal by month (migration 000033): every
            // line has its entry, recorded at the same instant (so in the same month). (id: the
            // line; stored: its change.)
            "journal line without its entry",
            format!(
                "SELECT jl.id, jl.delta_micros, 0 FROM journal_lines_all jl JOIN lots l ON l.id = jl.lot_id \
                 WHERE NOT EXISTS (SELECT 1 FROM journal_entries_all je WHERE je.id = jl.entry_id AND je.created_at = jl.created_at){}",
                only("l.account_id")
            ),
        ),
        (
            // A use of a feature takes only unscoped lots and lots scoped to it.
            "lot drawn by a use outside its scope",
            format!(
                "SELECT jl.id, jl.delta_micros, 0 FROM journal_lines_all jl JOIN lots l ON l.id = jl.lot_id \
                 JOIN journal_entries_all je ON je.id = jl.entry_id \
                 WHERE l.features IS NOT NULL AND jl.delta_micros < 0 AND je.kind IN ('spend', 'hold', 'transfer') \
                 AND je.feature IS NOT NULL AND {position}(l.features, '\"' || je.feature || '\"') = 0{}",
                only("l.account_id")
            ),
        ),
    ]
}

/// Runs `checks`, listing at most `MAX_LISTED` problems of each.
async fn check_rows(db: &DatabaseConnection, account: Option<i64>) -> Result<Vec<String>, DbErr> {
    let mut problems = Vec::new();
    for (what, sql) in checks(db.get_database_backend(), account) {
        let found = rows(db, &sql).await?;
        for row in found.iter().take(MAX_LISTED) {
            let id: i64 = row.try_get_by_index(0)?;
            let stored: i64 = row.try_get_by_index(1)?;
            let expected: i64 = row.try_get_by_index(2)?;
            problems.push(format!("{what}: id {id}: stored {stored} micro-credits, journal says {expected}"));
        }
        if found.len() > MAX_LISTED {
            problems.push(format!("{what}: {} more", found.len() - MAX_LISTED));
        }
    }
    Ok(problems)
}

/// One account's audit: the row checks on its rows, and its own conservation (its journal's
/// total is what its lots hold; its open holds are its hold entries). Cheap: it reads one
/// account's rows, on their indexes, so the console may run it inline. Transfers between
/// accounts are checked by the whole audit only.
pub async fn run_for_account(db: &DatabaseConnection, account_id: i64, now: DateTime<Utc>) -> Result<AuditReport, DbErr> {
    let mut report = AuditReport {
        accounts: 1,
        lots: scalar(db, &format!("SELECT COUNT(*) FROM lots WHERE account_id = {account_id}")).await?,
        entries: scalar(db, &format!("SELECT COUNT(*) FROM journal_entries_all WHERE account_id = {account_id}")).await?,
        ..Default::default()
    };
    report.problems = check_rows(db, Some(account_id)).await?;
    let journal_total = wide_sum(db, "amount_micros", &format!("journal_entries_all WHERE account_id = {account_id}")).await?;
    let remaining = wide_sum(db, "remaining_micros", &format!("lots WHERE account_id = {account_id}")).await?;
    if journal_total != remaining {
        report.problems.push(format!("the journal's total {journal_total} differs from what the lots hold {remaining}"));
    }
    report.held_micros =
        wide_sum(db, "amount_micros", &format!("reservations WHERE status = 'held' AND account_id = {account_id}")).await?;
    let held_in_journal = -wide_sum(
        db,
        "je.amount_micros",
        &format!(
            "journal_entries_all je JOIN reservations r ON r.hold_entry_id = je.id WHERE r.status = 'held' AND r.account_id = {account_id}"
        ),
    )
    .await?;
    if held_in_journal != report.held_micros {
        report.problems.push(format!("held credits {} differ from their hold entries {held_in_journal}", report.held_micros));
    }
    use crate::entity::lot;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    report.pending_expiry_lots = lot::Entity::find()
        .filter(lot::Column::AccountId.eq(account_id))
        .filter(lot::Column::Open.eq(true))
        .filter(lot::Column::ExpiresAt.lte(crate::ledger::time::truncate(now)))
        .count(db)
        .await? as i64;
    Ok(report)
}

/// Checks that need the program's rules, over the whole database or one account's rows: each
/// rollover lot within its plan's `max` (`ledger::rollover`). Compared with the program the
/// audit runs with: a plan whose `max` was lowered since reports the larger carries made under
/// the old one (say so in the change, or keep the old maximum), and a plan that no longer rolls
/// over is not checked.
pub async fn check_program(db: &DatabaseConnection, program: &Program, account: Option<i64>) -> Result<Vec<String>, DbErr> {
    let only = account.map_or(String::new(), |id| format!(" AND account_id = {id}"));
    let mut problems = Vec::new();
    for plan in &program.plans {
        let Some(rollover) = plan.rollover else { continue };
        // Plan codes are [a-z0-9_] (`program::parse_plans`), so the code is written into the
        // SQL; `substr` rather than LIKE, where `_` would match any character.
        let prefix = format!("{}:", plan.code);
        let sql = format!(
            "SELECT id, granted_micros, CAST({max} AS BIGINT) FROM lots WHERE source = 'rollover' \
             AND substr(origin_id, 1, {len}) = '{prefix}' AND granted_micros > {max}{only}",
            max = rollover.max.micros(),
            len = prefix.len(),
        );
        let found = rows(db, &sql).await?;
        for row in found.iter().take(MAX_LISTED) {
            let (id, granted, max): (i64, i64, i64) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
            problems
                .push(format!("rollover lot over its plan's max: id {id}: carried {granted} micro-credits, plan {} max {max}", plan.code));
        }
        if found.len() > MAX_LISTED {
            problems.push(format!("rollover lot over its plan's max: {} more", found.len() - MAX_LISTED));
        }
    }
    Ok(problems)
}

/// `run`, with the checks that need the program (`check_program`): what `credits audit`, the
/// operators' audits and the tests run.
pub async fn run_with_program(db: &DatabaseConnection, program: &Program, now: DateTime<Utc>) -> Result<AuditReport, DbErr> {
    let mut report = run(db, now).await?;
    report.problems.extend(check_program(db, program, None).await?);
    Ok(report)
}

pub async fn run(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<AuditReport, DbErr> {
    let mut report = AuditReport {
        accounts: scalar(db, "SELECT COUNT(*) FROM accounts").await?,
        lots: scalar(db, "SELECT COUNT(*) FROM lots").await?,
        entries: scalar(db, "SELECT COUNT(*) FROM journal_entries_all").await?,
        ..Default::default()
    };

    report.problems = check_rows(db, None).await?;
    // An archived month is read through the views like any other; what it held when archived
    // is recorded apart, so a month detached, dropped or edited since shows here.
    for (recorded, (entries, lines, amount, line_amount)) in crate::store::journal_months::archived_months_changed(db).await? {
        report.problems.push(format!(
            "archived journal month {} changed: {} entries, {} lines, {} and {} micro-credits when archived; now {entries}, {lines}, {amount} and {line_amount}",
            recorded.month, recorded.entries, recorded.lines, recorded.amount_micros, recorded.line_micros
        ));
    }

    // Conservation by kind of movement: granted + adjusted up = spent + expired + ... + held +
    // remaining. Every kind's lines are signed, so the journal's total must equal the lots'
    // total; what holds took and releases did not give back is exactly what is held.
    let journal_total = wide_sum(db, "amount_micros", "journal_entries_all").await?;
    let granted = wide_sum(db, "amount_micros", "journal_entries_all WHERE kind = 'grant'").await?;
    let outflow = -wide_sum(db, "amount_micros", "journal_entries_all WHERE kind <> 'grant'").await?;
    let remaining = wide_sum(db, "remaining_micros", "lots").await?;
    report.held_micros = wide_sum(db, "amount_micros", "reservations WHERE status = 'held'").await?;
    let held_in_journal =
        -wide_sum(db, "je.amount_micros", "journal_entries_all je JOIN reservations r ON r.hold_entry_id = je.id WHERE r.status = 'held'")
            .await?;
    // Transfers: what consumers' completed jobs paid is exactly what providers and the platform
    // were credited for them.
    let transferred_out = -wide_sum(db, "amount_micros", "journal_entries_all WHERE kind = 'transfer'").await?;
    let earned = wide_sum(db, "granted_micros", "lots WHERE source = 'provider_earnings'").await?;
    if transferred_out != earned {
        report.problems.push(format!("transfers out {transferred_out} differ from provider and platform earnings {earned}"));
    }
    // Gifts: what senders gave is exactly what recipients received, and every gift is a pair.
    let gifted = -wide_sum(db, "amount_micros", "journal_entries_all WHERE kind = 'gift_sent'").await?;
    let received = wide_sum(db, "amount_micros", "journal_entries_all WHERE kind = 'gift_received'").await?;
    let gifts_sent = scalar(db, "SELECT COUNT(*) FROM journal_entries_all WHERE kind = 'gift_sent'").await?;
    let gifts_received = scalar(db, "SELECT COUNT(*) FROM journal_entries_all WHERE kind = 'gift_received'").await?;
    if gifted != received || gifts_sent != gifts_received {
        report.problems.push(format!(
            "gifts sent ({gifts_sent}, {gifted} micro-credits) differ from gifts received ({gifts_received}, {received} micro-credits)"
        ));
    }
    if held_in_journal != report.held_micros {
        report.problems.push(format!("held credits {} differ from their hold entries {held_in_journal}", report.held_micros));
    }
    if granted - outflow != remaining || journal_total != remaining {
        report.problems.push(format!(
            "conservation broken: granted {granted} - moved out {outflow} != remaining {remaining} (journal total {journal_total})"
        ));
    }

    use crate::entity::lot;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let pending = lot::Entity::find()
        .filter(lot::Column::Open.eq(true))
        .filter(lot::Column::ExpiresAt.lte(crate::ledger::time::truncate(now)))
        .count(db)
        .await?;
    report.pending_expiry_lots = pending as i64;
    Ok(report)
}
