use crate::entity::account;
use crate::store::pg_array;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::collections::BTreeMap;

pub async fn by_external_id(conn: &impl ConnectionTrait, external_id: &str) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find().filter(account::Column::ExternalId.eq(external_id)).one(conn).await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: i64) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find_by_id(id).one(conn).await
}

/// The accounts with these ids (those that exist), in no particular order. Bounded by the
/// caller's list (a job's batch).
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<account::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    account::Entity::find().filter(account::Column::Id.is_in(ids.iter().copied())).all(conn).await
}

/// The per-account serialization point: `FOR UPDATE` on PostgreSQL. On SQLite the clause is
/// dropped and the immediate transaction already holds the database's write lock.
pub async fn lock(conn: &impl ConnectionTrait, id: i64) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find_by_id(id).lock_exclusive().one(conn).await
}

/// `lock`, found by the product's id in the same statement: one round trip on every keyed write.
pub async fn lock_by_external_id(conn: &impl ConnectionTrait, external_id: &str) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find().filter(account::Column::ExternalId.eq(external_id)).lock_exclusive().one(conn).await
}

pub async fn insert(conn: &impl ConnectionTrait, external_id: &str, plan: &str, now: DateTime<Utc>) -> Result<account::Model, DbErr> {
    account::ActiveModel {
        external_id: Set(external_id.to_string()),
        plan: Set(plan.to_string()),
        status: Set("active".to_string()),
        identity_verified: Set(false),
        credit_mail_enabled: Set(true),
        balance_micros: Set(0),
        created_at: Set(now),
        plan_since: Set(Some(now)),
        referral_code: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// Moves the cached balance by `delta_micros`, in the same transaction as the journal entry,
/// and returns the balance it now holds (what the entry records as its `balance_after_micros`).
pub async fn add_to_balance(conn: &impl ConnectionTrait, id: i64, delta_micros: i64) -> Result<i64, DbErr> {
    use sea_orm::{DbBackend, Statement};
    let backend = conn.get_database_backend();
    // Live balances (`crate::feed`): PostgreSQL delivers the notification at commit, and never
    // on rollback.
    let statement = if backend == DbBackend::Postgres {
        Statement::from_sql_and_values(
            backend,
            "UPDATE accounts SET balance_micros = balance_micros + $1 WHERE id = $2 \
             RETURNING balance_micros, pg_notify($3, CAST(id AS TEXT))",
            [delta_micros.into(), id.into(), crate::feed::CHANNEL.into()],
        )
    } else {
        Statement::from_sql_and_values(
            backend,
            "UPDATE accounts SET balance_micros = balance_micros + ? WHERE id = ? RETURNING balance_micros",
            [delta_micros.into(), id.into()],
        )
    };
    let row = conn.query_one_raw(statement).await?.ok_or(DbErr::RecordNotUpdated)?;
    row.try_get_by_index::<i64>(0)
}

/// `lock_by_external_id` for many accounts in one statement, locked in id order (so two batches
/// never wait on each other in a cycle). Unknown ids are simply absent.
pub async fn lock_many_by_external_id(conn: &impl ConnectionTrait, external_ids: &[&str]) -> Result<Vec<account::Model>, DbErr> {
    by_external_ids_in_id_order(external_ids).lock_exclusive().all(conn).await
}

/// `lock_many_by_external_id` without waiting (`FOR UPDATE SKIP LOCKED`): an account another
/// transaction holds is left out, as an unknown one is. PostgreSQL only: SQLite has no row
/// locks (its writers take turns for the whole database).
pub async fn lock_free_by_external_id(conn: &impl ConnectionTrait, external_ids: &[&str]) -> Result<Vec<account::Model>, DbErr> {
    use sea_orm::sea_query::{LockBehavior, LockType};
    by_external_ids_in_id_order(external_ids).lock_with_behavior(LockType::Update, LockBehavior::SkipLocked).all(conn).await
}

fn by_external_ids_in_id_order(external_ids: &[&str]) -> sea_orm::Select<account::Entity> {
    account::Entity::find().filter(account::Column::ExternalId.is_in(external_ids.iter().copied())).order_by_asc(account::Column::Id)
}

/// Balances moved per statement by `add_to_balances`: bounds its bound parameters.
const ACCOUNTS_PER_UPDATE: usize = 1000;

/// `add_to_balance` for many accounts, one statement per `ACCOUNTS_PER_UPDATE`: (account id,
/// delta), ids distinct. The deltas are joined as a `VALUES` list (linear, where a `CASE` of
/// every id is evaluated for every row), or for a large batch on PostgreSQL two arrays
/// (`store::pg_array`); on PostgreSQL the same statement sends each account's balance
/// notification (see `add_to_balance`). Returns each account's new balance.
pub async fn add_to_balances(conn: &impl ConnectionTrait, deltas: &[(i64, i64)]) -> Result<BTreeMap<i64, i64>, DbErr> {
    use sea_orm::{DbBackend, Statement, Value};
    let backend = conn.get_database_backend();
    let mut balances = BTreeMap::new();
    if pg_array::for_rows(backend, deltas.len()) {
        let values = vec![
            pg_array::of(deltas.iter().map(|(id, _)| *id)),
            pg_array::of(deltas.iter().map(|(_, delta)| *delta)),
            Value::from(crate::feed::CHANNEL),
        ];
        let sql = "UPDATE accounts SET balance_micros = accounts.balance_micros + v.delta \
                   FROM UNNEST(CAST($1 AS bigint[]), CAST($2 AS bigint[])) AS v(id, delta) WHERE accounts.id = v.id \
                   RETURNING accounts.id, accounts.balance_micros, pg_notify($3, CAST(accounts.id AS TEXT))";
        let updated = conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.len() != deltas.len() {
            return Err(DbErr::RecordNotUpdated);
        }
        for row in updated {
            balances.insert(row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?);
        }
        return Ok(balances);
    }
    for chunk in deltas.chunks(ACCOUNTS_PER_UPDATE) {
        let mut values: Vec<Value> = chunk.iter().flat_map(|(id, delta)| [Value::from(*id), Value::from(*delta)]).collect();
        let rows = super::values_rows(backend, chunk.len(), 2, 0);
        let sql = format!(
            "WITH v(id, delta) AS (VALUES {rows}) \
             UPDATE accounts SET balance_micros = accounts.balance_micros + v.delta FROM v WHERE accounts.id = v.id"
        );
        let sql = if backend == DbBackend::Postgres {
            values.push(Value::from(crate::feed::CHANNEL));
            format!("{sql} RETURNING accounts.id, accounts.balance_micros, pg_notify(${}, CAST(accounts.id AS TEXT))", values.len())
        } else {
            // SQLite's RETURNING sees only the table updated.
            format!("{sql} RETURNING id, balance_micros")
        };
        let updated = conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        if updated.len() != chunk.len() {
            return Err(DbErr::RecordNotUpdated);
        }
        for row in updated {
            balances.insert(row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?);
        }
    }
    Ok(balances)
}

/// PostgreSQL: `lots::set_remaining_many` and `add_to_balances` in ONE statement, for a posting
/// that moves both (a round trip fewer per spend batch): every lot must still hold its old value
/// and every account must exist, or nothing is returned but an error (the caller rolls back).
/// Falls back to the two statements on SQLite (or with no lot to move). A large batch's
/// rows are arrays (`store::pg_array`), a small one's `VALUES` lists.
pub async fn move_lots_and_balances(
    conn: &impl ConnectionTrait,
    lots: &[(i64, crate::ledger::Credits, crate::ledger::Credits)],
    deltas: &[(i64, i64)],
) -> Result<BTreeMap<i64, i64>, DbErr> {
    use sea_orm::{DbBackend, Statement, Value};
    let backend = conn.get_database_backend();
    let arrays = pg_array::for_rows(backend, lots.len().max(deltas.len()));
    // More rows than one `VALUES` statement takes (`ACCOUNTS_PER_UPDATE`) are always the array
    // form on PostgreSQL, whose parameters do not grow with the rows.
    const _: () = assert!(pg_array::FROM_ROWS <= ACCOUNTS_PER_UPDATE);
    if backend != DbBackend::Postgres || lots.is_empty() {
        // Accounts before lots, as below.
        let balances = add_to_balances(conn, deltas).await?;
        super::lots::set_remaining_many(conn, lots).await?;
        return Ok(balances);
    }
    let (mut values, delta_rows, lot_rows, channel) = if arrays {
        let mut values = super::lots::changes_arrays(lots);
        values.extend([pg_array::of(deltas.iter().map(|(id, _)| *id)), pg_array::of(deltas.iter().map(|(_, delta)| *delta))]);
        let deltas = "SELECT * FROM UNNEST(CAST($4 AS bigint[]), CAST($5 AS bigint[]))".to_string();
        (values, deltas, super::lots::CHANGES_UNNEST.to_string(), 6)
    } else {
        let mut values: Vec<Value> =
            lots.iter().flat_map(|(id, old, new)| [Value::from(*id), Value::from(old.micros()), Value::from(new.micros())]).collect();
        let lot_rows = format!("VALUES {}", super::values_rows(backend, lots.len(), 3, 0));
        let delta_rows = format!("VALUES {}", super::values_rows(backend, deltas.len(), 2, values.len()));
        values.extend(deltas.iter().flat_map(|(id, delta)| [Value::from(*id), Value::from(*delta)]));
        let channel = values.len() + 1;
        (values, delta_rows, lot_rows, channel)
    };
    values.push(Value::from(crate::feed::CHANNEL));
    // The accounts' update comes first: PostgreSQL takes each table's write lock in the order
    // the statement names them, and the journal archive locks `accounts` then `lots`
    // (`journal_months::detach_to_archive`). Lots first, a spend held `lots` and waited for
    // `accounts` while the archive held `accounts` and waited for `lots`: a deadlock, seen in
    // tests/fleet.rs.
    let sql = format!(
        "WITH d(id, delta) AS ({delta_rows}), \
         b AS (UPDATE accounts SET balance_micros = accounts.balance_micros + d.delta FROM d WHERE accounts.id = d.id \
               RETURNING accounts.id, accounts.balance_micros, pg_notify(${channel}, CAST(accounts.id AS TEXT))), \
         v(id, old, new) AS ({lot_rows}), \
         moved AS (UPDATE lots SET remaining_micros = v.new, \"open\" = (v.new <> 0) FROM v \
                   WHERE lots.id = v.id AND lots.remaining_micros = v.old RETURNING lots.id) \
         SELECT b.id, b.balance_micros, (SELECT count(*) FROM moved) FROM b"
    );
    let updated = conn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    if updated.len() != deltas.len() {
        return Err(DbErr::RecordNotUpdated);
    }
    let mut balances = BTreeMap::new();
    for row in updated {
        if row.try_get_by_index::<i64>(2)? != lots.len() as i64 {
            return Err(DbErr::RecordNotUpdated);
        }
        balances.insert(row.try_get_by_index::<i64>(0)?, row.try_get_by_index::<i64>(1)?);
    }
    Ok(balances)
}

/// `lock` for many accounts in one statement, in id order (so two batches never wait on each
/// other in a cycle). Unknown ids are simply absent.
pub async fn lock_many(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<account::Model>, DbErr> {
    account::Entity::find()
        .filter(account::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(account::Column::Id)
        .lock_exclusive()
        .all(conn)
        .await
}

pub async fn set_status(conn: &impl ConnectionTrait, account: account::Model, status: &str) -> Result<account::Model, DbErr> {
    use sea_orm::IntoActiveModel;
    let mut active = account.into_active_model();
    active.status = Set(status.to_string());
    active.update(conn).await
}

pub async fn set_plan(
    conn: &impl ConnectionTrait,
    account: account::Model,
    plan: &str,
    since: DateTime<Utc>,
) -> Result<account::Model, DbErr> {
    use sea_orm::IntoActiveModel;
    let mut active = account.into_active_model();
    active.plan = Set(plan.to_string());
    active.plan_since = Set(Some(since));
    active.update(conn).await
}

pub async fn by_referral_code(conn: &impl ConnectionTrait, code: &str) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find().filter(account::Column::ReferralCode.eq(code)).one(conn).await
}

pub async fn set_referral_code(conn: &impl ConnectionTrait, account: account::Model, code: &str) -> Result<account::Model, DbErr> {
    use sea_orm::IntoActiveModel;
    let mut active = account.into_active_model();
    active.referral_code = Set(Some(code.to_string()));
    active.update(conn).await
}

/// Ids of accounts on one of `plans`, after `cursor`, in id order: one batch of a sweep.
pub async fn ids_on_plans_after(conn: &impl ConnectionTrait, plans: &[String], cursor: i64, limit: u64) -> Result<Vec<i64>, DbErr> {
    account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .filter(account::Column::Plan.is_in(plans.iter().map(String::as_str)))
        .filter(account::Column::Id.gt(cursor))
        .order_by_asc(account::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

/// Which of these accounts hold more than `max_micros`, held credits included: a posting that
/// put one there is refused, and its transaction rolled back.
pub async fn over_limit(conn: &impl ConnectionTrait, ids: &[i64], max_micros: i64) -> Result<Vec<i64>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Each held amount and the balance are below the limit plus one operation, so this sum of a
    // few terms fits an i64.
    let held = "a.balance_micros + COALESCE((SELECT SUM(r.amount_micros) \
                FROM reservations r WHERE r.account_id = a.id AND r.status = 'held'), 0)";
    let backend = conn.get_database_backend();
    let statement = if pg_array::for_rows(backend, ids.len()) {
        // One statement for every large batch, prepared once per connection, where a list of
        // a thousand ids written into the text is parsed and planned anew for each part.
        let sql = format!("SELECT a.id FROM accounts a WHERE a.id = ANY(CAST($1 AS bigint[])) AND {held} > $2 ORDER BY a.id");
        sea_orm::Statement::from_sql_and_values(backend, sql, [pg_array::of(ids.iter().copied()), max_micros.into()])
    } else {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        sea_orm::Statement::from_string(
            backend,
            format!("SELECT a.id FROM accounts a WHERE a.id IN ({list}) AND {held} > {max_micros} ORDER BY a.id"),
        )
    };
    let rows = conn.query_all_raw(statement).await?;
    rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect()
}

/// The product's ids of these accounts, by internal id (unknown ids are absent).
pub async fn external_ids(conn: &impl ConnectionTrait, ids: impl IntoIterator<Item = i64>) -> Result<BTreeMap<i64, String>, DbErr> {
    let ids: Vec<i64> = ids.into_iter().collect();
    let rows: Vec<(i64, String)> = account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .column(account::Column::ExternalId)
        .filter(account::Column::Id.is_in(ids))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// An account's yes-or-no settings, each one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Whether its identity is verified (the market needs it).
    IdentityVerified,
    /// Whether it gets the credit mail (low-credit and expiry notices).
    CreditMail,
}

/// Sets one flag of an account; the caller holds the account's lock.
pub async fn set_flag(conn: &impl ConnectionTrait, id: i64, flag: Flag, value: bool) -> Result<(), DbErr> {
    let column = match flag {
        Flag::IdentityVerified => account::Column::IdentityVerified,
        Flag::CreditMail => account::Column::CreditMailEnabled,
    };
    account::Entity::update_many().col_expr(column, Expr::value(value)).filter(account::Column::Id.eq(id)).exec(conn).await?;
    Ok(())
}

/// Sets (or, with None, clears) when these accounts were last warned of low credits,
/// `ACCOUNTS_PER_UPDATE` accounts per statement.
pub async fn set_low_credits_notified(conn: &impl ConnectionTrait, ids: &[i64], at: Option<DateTime<Utc>>) -> Result<(), DbErr> {
    for chunk in ids.chunks(ACCOUNTS_PER_UPDATE) {
        account::Entity::update_many()
            .col_expr(account::Column::LowCreditsNotifiedAt, Expr::value(at))
            .filter(account::Column::Id.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Ids of accounts whose subscription's next month has started by `now`, oldest first: one
/// batch of the continuous renewal.
pub async fn due_renewals(conn: &impl ConnectionTrait, now: DateTime<Utc>, limit: u64) -> Result<Vec<i64>, DbErr> {
    account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .filter(account::Column::RenewsAt.lte(now))
        .order_by_asc(account::Column::RenewsAt)
        .order_by_asc(account::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

/// Sets when an account's subscription next renews (none: no renewal due); the caller holds
/// the account's lock.
pub async fn set_renews_at(conn: &impl ConnectionTrait, id: i64, at: Option<DateTime<Utc>>) -> Result<(), DbErr> {
    account::Entity::update_many()
        .col_expr(account::Column::RenewsAt, Expr::value(at))
        .filter(account::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// `set_renews_at` for many accounts, one statement per `ACCOUNTS_PER_UPDATE`: (account id,
/// next renewal), ids distinct, joined as a `VALUES` list; the caller holds their locks.
pub async fn set_renews_at_many(conn: &impl ConnectionTrait, renewals: &[(i64, DateTime<Utc>)]) -> Result<(), DbErr> {
    use sea_orm::{Statement, Value};
    let backend = conn.get_database_backend();
    for chunk in renewals.chunks(ACCOUNTS_PER_UPDATE) {
        let values: Vec<Value> = chunk.iter().flat_map(|(id, at)| [Value::from(*id), Value::from(*at)]).collect();
        let sql = format!(
            "WITH v(id, at) AS (VALUES {}) UPDATE accounts SET renews_at = v.at FROM v WHERE accounts.id = v.id",
            super::values_rows(backend, chunk.len(), 2, 0)
        );
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    }
    Ok(())
}

/// Clears the renewal instant of those of `ids` still due at `now`: accounts the renewal
/// passed over (no longer on a plan with credits, or not receiving credits), so they are not
/// picked again and again. The daily sweep sets it again once they are due credits.
pub async fn clear_due_renewals(conn: &impl ConnectionTrait, ids: &[i64], now: DateTime<Utc>) -> Result<(), DbErr> {
    for chunk in ids.chunks(ACCOUNTS_PER_UPDATE) {
        account::Entity::update_many()
            .col_expr(account::Column::RenewsAt, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(account::Column::Id.is_in(chunk.iter().copied()))
            .filter(account::Column::RenewsAt.lte(now))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Accounts whose external id starts with `prefix`, exactly (case-sensitive, `%` and `_` plain
/// characters) on both databases: `substr` compares characters, where `LIKE` is case-blind on
/// SQLite and a range would follow PostgreSQL's collation. It reads the whole table: an
/// operator's search, not a hot path.
pub fn with_id_prefix(prefix: &str) -> sea_orm::Select<account::Entity> {
    use sea_orm::sea_query::Func;
    // int4 arguments: PostgreSQL has no substr(text, integer, bigint). Ids are at most 128 characters.
    let length = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    let head = Func::cust("substr").arg(Expr::col(account::Column::ExternalId)).arg(1i32).arg(length);
    account::Entity::find().filter(Expr::expr(head).eq(prefix))
}

/// A page of `with_id_prefix`, newest account first.
pub async fn search_page(
    conn: &impl ConnectionTrait,
    prefix: &str,
    window: &crate::store::keyset::Window,
) -> Result<crate::store::keyset::Page<account::Model>, DbErr> {
    crate::store::keyset::newest_first(conn, with_id_prefix(prefix), account::Column::Id, window).await
}
