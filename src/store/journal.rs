use crate::entity::{journal_entry, journal_line};
use crate::store::journal_months;
use crate::store::keyset::{self, Page, Window};
use crate::store::pg_array;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QueryTrait, Select, Set,
    Statement,
};
use std::fmt;

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Grant,
    Spend,
    Expire,
    Refund,
    Revoke,
    Adjust,
    Transfer,
    /// Credits taken from lots into a reservation.
    Hold,
    /// Held credits given back to the lots they came from.
    Release,
    /// What remained of a lot, voided by an operator (`ledger::corrections`).
    Void,
    /// An operator moved a lot's expiry: no lines (it moves no credits), the lot and its old and
    /// new expiry in the entry's detail (an expiry moved to now is followed by an EXPIRE).
    ExpiryChange,
    /// A plan lot's unused credits carried into a new lot of the same account at its period's
    /// end (`ledger::rollover`): two lines, out of the old lot and into the new one, summing
    /// to zero; dated at the old lot's expiry, like the EXPIRE of whatever did not carry.
    Rollover,
    /// A gift out of this account (`ledger::gift`): lines out of the sender's paid lots; its
    /// detail names the recipient.
    GiftSent,
    /// A gift into this account: lines into the new GIFT lots, one per part of the gift with
    /// the expiry it had; its detail names the sender and the GIFT_SENT entry it pairs with.
    GiftReceived,
}

impl EntryKind {
    pub const ALL: [EntryKind; 14] = [
        EntryKind::Grant,
        EntryKind::Spend,
        EntryKind::Expire,
        EntryKind::Refund,
        EntryKind::Revoke,
        EntryKind::Adjust,
        EntryKind::Transfer,
        EntryKind::Hold,
        EntryKind::Release,
        EntryKind::Void,
        EntryKind::ExpiryChange,
        EntryKind::Rollover,
        EntryKind::GiftSent,
        EntryKind::GiftReceived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Spend => "spend",
            EntryKind::Expire => "expire",
            EntryKind::Refund => "refund",
            EntryKind::Revoke => "revoke",
            EntryKind::Adjust => "adjust",
            EntryKind::Transfer => "transfer",
            EntryKind::Hold => "hold",
            EntryKind::Release => "release",
            EntryKind::Void => "void",
            EntryKind::ExpiryChange => "expiry_change",
            EntryKind::Rollover => "rollover",
            EntryKind::GiftSent => "gift_sent",
            EntryKind::GiftReceived => "gift_received",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub struct NewEntry<'a> {
    pub account_id: i64,
    pub kind: EntryKind,
    pub effective_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub operation: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub feature: Option<&'a str>,
    pub model: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// The admin subject of the operator who made it; none for everything else.
    pub actor: Option<&'a str>,
    /// What the lines cannot say (JSON): the old and new expiry of an expiry change.
    pub detail: Option<&'a str>,
    /// The caller's metadata as stored: canonical JSON (`service::metadata`).
    pub metadata: Option<&'a str>,
    /// (lot id, signed change to its remaining amount)
    pub lines: Vec<(i64, i64)>,
    /// The account's recorded balance once this entry is posted: the posting moves the cached
    /// balance first and writes what it became (`posting`), so entries of one account, written
    /// under its lock, carry a running sum in sequence order.
    pub balance_after_micros: i64,
}

impl NewEntry<'_> {
    /// The entry's net change: the sum of its lines.
    pub fn amount_micros(&self) -> i64 {
        self.lines.iter().map(|(_, delta)| delta).sum()
    }
}

/// Appends an entry and its lines. The entry's amount is the sum of its lines, by construction.
pub async fn append(conn: &impl ConnectionTrait, new: NewEntry<'_>) -> Result<journal_entry::Model, DbErr> {
    let entry = row(&new).insert(conn).await?;
    if new.lines.is_empty() {
        return Ok(entry);
    }
    let lines = new.lines.iter().map(|(lot_id, delta)| journal_line::ActiveModel {
        entry_id: Set(entry.id),
        lot_id: Set(*lot_id),
        delta_micros: Set(*delta),
        created_at: Set(entry.created_at),
        ..Default::default()
    });
    journal_line::Entity::insert_many(lines).exec(conn).await?;
    Ok(entry)
}

/// Journal lines per insert statement: bounds its bound parameters.
const LINES_PER_INSERT: usize = 2000;
/// Journal entries per insert statement (fourteen columns each: 14,000 parameters).
const ENTRIES_PER_INSERT: usize = 1000;

/// What an inserted entry says, as the database gives it back: how the ids RETURNING hands out
/// (in no promised order) are matched to the entries asked for. Two entries alike in all of it
/// are interchangeable, so either may take either id. Instants count to the microsecond, which
/// is what PostgreSQL keeps.
/// (Its optional texts are grouped: a tuple is hashable up to twelve members.)
type Content = (i64, String, i64, i64, i64, String, [Option<String>; 6], i64);

/// What a new entry will say once inserted (`content_of_row`).
fn content_of(new: &NewEntry<'_>) -> Content {
    (
        new.account_id,
        new.kind.as_str().to_string(),
        new.amount_micros(),
        new.effective_at.timestamp_micros(),
        new.created_at.timestamp_micros(),
        new.operation.to_string(),
        [new.idempotency_key, new.feature, new.model, new.reason, new.actor, new.metadata].map(|t| t.map(str::to_string)),
        new.balance_after_micros,
    )
}

fn content_of_row(e: &journal_entry::Model) -> Content {
    (
        e.account_id,
        e.kind.clone(),
        e.amount_micros,
        e.effective_at.timestamp_micros(),
        e.created_at.timestamp_micros(),
        e.operation.clone(),
        [e.idempotency_key.clone(), e.feature.clone(), e.model.clone(), e.reason.clone(), e.actor.clone(), e.metadata.clone()],
        e.balance_after_micros,
    )
}

fn check_lines(new: &NewEntry<'_>) {
    // Only an expiry change has no lines: it moves nothing (lines are never zero, a CHECK says
    // so), and its detail names the lot.
    assert!(!new.lines.is_empty() || new.kind == EntryKind::ExpiryChange, "a journal entry touches at least one lot");
    assert!(new.lines.iter().all(|(_, delta)| *delta != 0), "journal lines are never zero");
}

fn row(new: &NewEntry<'_>) -> journal_entry::ActiveModel {
    check_lines(new);
    journal_entry::ActiveModel {
        account_id: Set(new.account_id),
        kind: Set(new.kind.as_str().to_string()),
        amount_micros: Set(new.amount_micros()),
        effective_at: Set(new.effective_at),
        created_at: Set(new.created_at),
        operation: Set(new.operation.to_string()),
        idempotency_key: Set(new.idempotency_key.map(str::to_string)),
        feature: Set(new.feature.map(str::to_string)),
        model: Set(new.model.map(str::to_string)),
        reason: Set(new.reason.map(str::to_string)),
        actor: Set(new.actor.map(str::to_string)),
        detail: Set(new.detail.map(str::to_string)),
        metadata: Set(new.metadata.map(str::to_string)),
        balance_after_micros: Set(new.balance_after_micros),
        ..Default::default()
    }
}

/// `append` for many entries. Ids come back in the order of `entries`. PostgreSQL: entries and
/// their lines together (`append_with_lines`), a large batch in one statement of arrays
/// (`store::pg_array`), a small one in one `VALUES` statement per run of them; SQLite: one
/// statement per `ENTRIES_PER_INSERT` entries and one per `LINES_PER_INSERT` lines.
pub async fn append_many(conn: &impl ConnectionTrait, entries: &[NewEntry<'_>]) -> Result<Vec<i64>, DbErr> {
    if pg_array::for_rows(conn.get_database_backend(), entries.len()) {
        return append_with_lines(conn, entries, arrays_statement(entries)).await;
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        let mut ids = Vec::with_capacity(entries.len());
        for chunk in pg_chunks(entries) {
            ids.extend(append_with_lines(conn, chunk, values_statement(chunk)).await?);
        }
        return Ok(ids);
    }
    let mut ids_by_content: std::collections::HashMap<Content, Vec<i64>> = std::collections::HashMap::with_capacity(entries.len());
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        for inserted in journal_entry::Entity::insert_many(chunk.iter().map(row)).exec_with_returning(conn).await? {
            ids_by_content.entry(content_of_row(&inserted)).or_default().push(inserted.id);
        }
    }
    let ids: Vec<i64> = entries
        .iter()
        .map(|new| -> Result<i64, DbErr> {
            let content = content_of(new);
            // An instant the database stored otherwise than asked would end here: an error the
            // caller rolls back, not a panic.
            ids_by_content
                .get_mut(&content)
                .and_then(Vec::pop)
                .ok_or_else(|| DbErr::Custom(format!("journal entry of account {} came back unlike any asked for", new.account_id)))
        })
        .collect::<Result<_, _>>()?;
    in_sequence(entries, &ids)?;
    let lines: Vec<journal_line::ActiveModel> = entries
        .iter()
        .zip(&ids)
        .flat_map(|(new, entry_id)| {
            new.lines.iter().map(|(lot_id, delta)| journal_line::ActiveModel {
                entry_id: Set(*entry_id),
                lot_id: Set(*lot_id),
                delta_micros: Set(*delta),
                created_at: Set(new.created_at),
                ..Default::default()
            })
        })
        .collect();
    for chunk in lines.chunks(LINES_PER_INSERT) {
        journal_line::Entity::insert_many(chunk.to_vec()).exec_without_returning(conn).await?;
    }
    Ok(ids)
}

/// Bound parameters per statement on PostgreSQL at most (its limit is 65,535): fourteen per entry
/// and four per line.
const PG_PARAMETERS: usize = 60_000;

/// `entries` cut into runs that `append_with_lines` can write in one statement each.
fn pg_chunks<'e, 'a>(entries: &'e [NewEntry<'a>]) -> Vec<&'e [NewEntry<'a>]> {
    let mut chunks = Vec::new();
    let (mut start, mut parameters) = (0, 0);
    for (index, entry) in entries.iter().enumerate() {
        let cost = 14 + 4 * entry.lines.len();
        if index > start && (parameters + cost > PG_PARAMETERS || index - start == ENTRIES_PER_INSERT) {
            chunks.push(&entries[start..index]);
            (start, parameters) = (index, 0);
        }
        parameters += cost;
    }
    if start < entries.len() {
        chunks.push(&entries[start..]);
    }
    chunks
}

/// PostgreSQL: the entries and their lines in ONE statement (a round trip fewer for every
/// posting, a spend's included; docs/benchmarks.md), `statement` (`values_statement` or
/// `arrays_statement`). The entries are inserted in the order given and each line finds its
/// entry by that position (`ord`), which holds only if the ids came out in the same order: the
/// rows that come back are checked to be exactly the entries asked for, in order, by id; anything
/// else is an error, and the caller's transaction, lines and all, rolls back.
async fn append_with_lines(conn: &impl ConnectionTrait, entries: &[NewEntry<'_>], statement: Statement) -> Result<Vec<i64>, DbErr> {
    use sea_orm::FromQueryResult;
    let mut inserted: Vec<journal_entry::Model> = journal_entry::Model::find_by_statement(statement).all(conn).await?;
    inserted.sort_by_key(|e| e.id);
    let in_order =
        inserted.len() == entries.len() && inserted.iter().zip(entries).all(|(got, asked)| content_of_row(got) == content_of(asked));
    if !in_order {
        return Err(DbErr::Custom("journal entries came back unlike, or out of the order of, those asked for".into()));
    }
    Ok(inserted.into_iter().map(|e| e.id).collect())
}

/// `append_with_lines`' statement for a run of entries, each cell a parameter of a `VALUES` list.
fn values_statement(entries: &[NewEntry<'_>]) -> Statement {
    let insert = journal_entry::Entity::insert_many(entries.iter().map(row)).build(DbBackend::Postgres);
    let mut values = insert.values.map(|v| v.0).unwrap_or_default();
    let offset = values.len();
    let lines: Vec<(usize, i64, i64, DateTime<Utc>)> = entries
        .iter()
        .enumerate()
        .flat_map(|(ord, new)| new.lines.iter().map(move |(lot_id, delta)| (ord + 1, *lot_id, *delta, new.created_at)))
        .collect();
    let sql = if lines.is_empty() {
        format!("{} RETURNING *", insert.sql)
    } else {
        let rows = (0..lines.len())
            .map(|i| {
                let n = offset + 4 * i;
                format!("(${}::bigint, ${}::bigint, ${}::bigint, ${}::timestamptz)", n + 1, n + 2, n + 3, n + 4)
            })
            .collect::<Vec<_>>()
            .join(", ");
        for (ord, lot_id, delta, created_at) in &lines {
            values.extend([(*ord as i64).into(), (*lot_id).into(), (*delta).into(), (*created_at).into()]);
        }
        format!(
            "WITH e AS ({} RETURNING *), \
             ordered AS (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM e), \
             l AS (INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) \
                   SELECT ordered.id, v.lot_id, v.delta, v.created_at FROM (VALUES {rows}) AS v(ord, lot_id, delta, created_at) \
                   JOIN ordered ON ordered.ord = v.ord) \
             SELECT * FROM e",
            insert.sql
        )
    };
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `append_with_lines`' statement for a large batch: each column one array parameter
/// (`store::pg_array`), so the text is the same whatever the number of rows.
fn arrays_statement(entries: &[NewEntry<'_>]) -> Statement {
    for new in entries {
        check_lines(new);
    }
    let lines: Vec<(i64, i64, i64, DateTime<Utc>)> = entries
        .iter()
        .enumerate()
        .flat_map(|(ord, new)| new.lines.iter().map(move |(lot_id, delta)| (ord as i64 + 1, *lot_id, *delta, new.created_at)))
        .collect();
    let values = vec![
        pg_array::of(entries.iter().map(|e| e.account_id)),
        pg_array::of(entries.iter().map(|e| e.kind.as_str())),
        pg_array::of(entries.iter().map(NewEntry::amount_micros)),
        pg_array::of(entries.iter().map(|e| e.effective_at)),
        pg_array::of(entries.iter().map(|e| e.created_at)),
        pg_array::of(entries.iter().map(|e| e.operation)),
        pg_array::of(entries.iter().map(|e| e.idempotency_key)),
        pg_array::of(entries.iter().map(|e| e.feature)),
        pg_array::of(entries.iter().map(|e| e.model)),
        pg_array::of(entries.iter().map(|e| e.reason)),
        pg_array::of(entries.iter().map(|e| e.actor)),
        pg_array::of(entries.iter().map(|e| e.detail)),
        pg_array::of(entries.iter().map(|e| e.metadata)),
        pg_array::of(entries.iter().map(|e| e.balance_after_micros)),
        pg_array::of(lines.iter().map(|l| l.0)),
        pg_array::of(lines.iter().map(|l| l.1)),
        pg_array::of(lines.iter().map(|l| l.2)),
        pg_array::of(lines.iter().map(|l| l.3)),
    ];
    // `WITH ORDINALITY` numbers the rows as given; the insert takes them, and so their ids, in
    // that order (checked by `append_with_lines`).
    let sql = "WITH e AS (INSERT INTO journal_entries (account_id, kind, amount_micros, effective_at, created_at, operation, \
                   idempotency_key, feature, model, reason, actor, detail, metadata, balance_after_micros) \
                   SELECT account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, feature, model, \
                   reason, actor, detail, metadata, balance_after_micros \
                   FROM UNNEST(CAST($1 AS bigint[]), CAST($2 AS text[]), CAST($3 AS bigint[]), CAST($4 AS timestamptz[]), \
                   CAST($5 AS timestamptz[]), CAST($6 AS text[]), CAST($7 AS text[]), CAST($8 AS text[]), CAST($9 AS text[]), \
                   CAST($10 AS text[]), CAST($11 AS text[]), CAST($12 AS text[]), CAST($13 AS text[]), CAST($14 AS bigint[])) \
                   WITH ORDINALITY AS n(account_id, kind, amount_micros, effective_at, created_at, operation, idempotency_key, \
                   feature, model, reason, actor, detail, metadata, balance_after_micros, ord) \
                   ORDER BY ord RETURNING *), \
               ordered AS (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM e), \
               l AS (INSERT INTO journal_lines (entry_id, lot_id, delta_micros, created_at) \
                   SELECT ordered.id, v.lot_id, v.delta, v.created_at \
                   FROM UNNEST(CAST($15 AS bigint[]), CAST($16 AS bigint[]), CAST($17 AS bigint[]), CAST($18 AS timestamptz[])) \
                   AS v(ord, lot_id, delta, created_at) JOIN ordered ON ordered.ord = v.ord) \
               SELECT * FROM e";
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The running balances `append_many` was given hold in sequence order only if each account's
/// entries took ids in the order given. One multi-row INSERT hands out ids in row order on both
/// databases; this turns a database that did otherwise into an error the caller rolls back,
/// rather than balances recorded out of order.
fn in_sequence(entries: &[NewEntry<'_>], ids: &[i64]) -> Result<(), DbErr> {
    let mut last: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for (new, id) in entries.iter().zip(ids) {
        if let Some(previous) = last.insert(new.account_id, *id)
            && previous > *id
        {
            return Err(DbErr::Custom(format!("journal entries of account {} took ids out of their order", new.account_id)));
        }
    }
    Ok(())
}

/// Gives every journal line loaded without an instant (an export made before lines had one:
/// `journal_line::before_lines_had_an_instant`) its entry's. On PostgreSQL the update moves
/// each line to its month's partition.
pub async fn fill_line_instants(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let placeholder = journal_line::before_lines_had_an_instant();
    let result = journal_line::Entity::update_many()
        .col_expr(
            journal_line::Column::CreatedAt,
            Expr::cust("(SELECT je.created_at FROM journal_entries je WHERE je.id = journal_lines.entry_id)"),
        )
        .filter(journal_line::Column::CreatedAt.eq(placeholder))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Sets every entry's `balance_after_micros` to the running sum of `amount_micros` over its
/// account's entries in sequence order: what posting writes, for entries loaded without it
/// (an import of an export made before the column). The same statement as the migration's
/// backfill (`m20261203_000020_add_balance_after`).
pub async fn recompute_balances_after(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    conn.execute_unprepared(
        "UPDATE journal_entries SET balance_after_micros = r.running \
         FROM (SELECT id, CAST(SUM(amount_micros) OVER (PARTITION BY account_id ORDER BY id \
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS running FROM journal_entries) AS r \
         WHERE journal_entries.id = r.id",
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub kinds: Vec<EntryKind>,
    pub feature: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries whose metadata has this key with exactly this value. The key is checked by the
    /// caller (`service::metadata::key`: letters, digits and `_ . -`), so it is safe in a JSON path.
    pub metadata: Option<(String, String)>,
}

/// The condition "the stored metadata has `key` equal to `value`", in each database's JSON
/// functions over the text column: SQLite's `json_extract` with the path `$."key"`, PostgreSQL's
/// `->>` on the text cast to `jsonb`. Both bind the key and the value as parameters. No index
/// serves it: it is evaluated on the account's entries the other conditions leave (those are
/// found through `journal_account_sequence`), newest first, until a page is full, so a key that
/// matches rarely reads much of the account's journal, as the other filters do (`count`).
fn metadata_is(backend: DbBackend, key: &str, value: &str) -> SimpleExpr {
    debug_assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "a checked key");
    match backend {
        // sea-query numbers a custom expression's values as `$1`, `$2` on PostgreSQL (it leaves
        // `?` as it is there) and renumbers them within the statement.
        DbBackend::Postgres => Expr::cust_with_values("CAST(\"metadata\" AS jsonb) ->> $1 = $2", [key, value]),
        _ => Expr::cust_with_values("json_extract(\"metadata\", ?) = ?", [format!("$.\"{key}\""), value.to_string()]),
    }
}

/// `query` over every month of the journal, archived ones included: it reads the view
/// (`journal_months::ENTRIES_ALL`, `LINES_ALL`) under the table's own name, so the entity's
/// columns still name it. Every read of the journal goes through here; writes go to the tables.
pub fn every_month<E: EntityTrait>(mut query: Select<E>) -> Select<E> {
    let table = E::default().table_name();
    let view = match table {
        "journal_entries" => journal_months::ENTRIES_ALL,
        "journal_lines" => journal_months::LINES_ALL,
        _ => return query,
    };
    QueryTrait::query(&mut query).from_clear().from_as(Alias::new(view), Alias::new(table));
    query
}

/// An account's entries that pass `filter`.
fn matching(backend: DbBackend, account_id: i64, filter: &HistoryFilter) -> Select<journal_entry::Entity> {
    let mut query = every_month(journal_entry::Entity::find()).filter(journal_entry::Column::AccountId.eq(account_id));
    if !filter.kinds.is_empty() {
        query = query.filter(journal_entry::Column::Kind.is_in(filter.kinds.iter().map(|k| k.as_str())));
    }
    if let Some(feature) = &filter.feature {
        query = query.filter(journal_entry::Column::Feature.eq(feature.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(journal_entry::Column::EffectiveAt.gte(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(journal_entry::Column::EffectiveAt.lt(until));
    }
    if let Some((key, value)) = &filter.metadata {
        query = query.filter(journal_entry::Column::Metadata.is_not_null()).filter(metadata_is(backend, key, value));
    }
    query
}

/// A page of an account's history, newest first by sequence (`journal_account_sequence`).
pub async fn page(
    conn: &impl ConnectionTrait,
    account_id: i64,
    filter: &HistoryFilter,
    window: &Window,
) -> Result<Page<journal_entry::Model>, DbErr> {
    keyset::newest_first(conn, matching(conn.get_database_backend(), account_id, filter), journal_entry::Column::Id, window).await
}

/// How many entries pass `filter`. It reads every entry of the account (the kind, feature and
/// instant are not indexed), so its cost grows with the account's journal.
pub async fn count(conn: &impl ConnectionTrait, account_id: i64, filter: &HistoryFilter) -> Result<u64, DbErr> {
    keyset::count(conn, matching(conn.get_database_backend(), account_id, filter)).await
}

pub async fn lines_of(conn: &impl ConnectionTrait, entry_ids: &[i64]) -> Result<Vec<journal_line::Model>, DbErr> {
    if entry_ids.is_empty() {
        return Ok(Vec::new());
    }
    every_month(journal_line::Entity::find())
        .filter(journal_line::Column::EntryId.is_in(entry_ids.iter().copied()))
        .order_by_asc(journal_line::Column::Id)
        .all(conn)
        .await
}

/// What entries of these kinds took from these lots, in micro-credits (positive): how much of a
/// purchase's bonus was spent, for its refund. Ids and kinds are numbers and fixed names, so
/// they are written into the statement.
pub async fn taken_from_lots(conn: &impl ConnectionTrait, lot_ids: &[i64], kinds: &[EntryKind]) -> Result<i64, DbErr> {
    if lot_ids.is_empty() || kinds.is_empty() {
        return Ok(0);
    }
    let ids = lot_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let kinds = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT CAST(COALESCE(-SUM(jl.delta_micros), 0) AS BIGINT) FROM journal_lines_all jl \
         JOIN journal_entries_all je ON je.id = jl.entry_id WHERE jl.lot_id IN ({ids}) AND je.kind IN ({kinds})"
    );
    let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await?;
    Ok(row.map(|r| r.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0))
}

/// What an account gave in gifts recorded in `[from, until)`: (micro-credits, gifts). On the
/// journal's (account, recorded) index, so a day's sum reads that day's entries only.
pub async fn gifts_sent_between(
    conn: &impl ConnectionTrait,
    account_id: i64,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(i64, i64), DbErr> {
    use sea_orm::QuerySelect;
    let row = every_month(journal_entry::Entity::find())
        .select_only()
        .column_as(Expr::cust("CAST(COALESCE(-SUM(amount_micros), 0) AS BIGINT)"), "sent")
        .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "gifts")
        .filter(journal_entry::Column::AccountId.eq(account_id))
        .filter(journal_entry::Column::Kind.eq(EntryKind::GiftSent.as_str()))
        .filter(journal_entry::Column::CreatedAt.gte(from))
        .filter(journal_entry::Column::CreatedAt.lt(until))
        .into_tuple::<(i64, i64)>()
        .one(conn)
        .await?;
    Ok(row.unwrap_or((0, 0)))
}

/// The net of an account's spends, holds and releases recorded in `(since, until]`, in
/// micro-credits (negative when use took credits): the runway's recent burn. A hold released in
/// the window nets to nothing and one captured to what was captured. On the journal's
/// (account, recorded) index, so it reads the window's entries only.
pub async fn net_use_between(
    conn: &impl ConnectionTrait,
    account_id: i64,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<i64, DbErr> {
    use sea_orm::QuerySelect;
    let kinds = [EntryKind::Spend, EntryKind::Hold, EntryKind::Release].map(EntryKind::as_str);
    let net = every_month(journal_entry::Entity::find())
        .select_only()
        .column_as(Expr::cust("CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT)"), "net")
        .filter(journal_entry::Column::AccountId.eq(account_id))
        .filter(journal_entry::Column::Kind.is_in(kinds))
        .filter(journal_entry::Column::CreatedAt.gt(since))
        .filter(journal_entry::Column::CreatedAt.lte(until))
        .into_tuple::<i64>()
        .one(conn)
        .await?;
    Ok(net.unwrap_or(0))
}
