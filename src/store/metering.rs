//! Containers, meters, settlements and their usage lines. Rows the settlement works on are read
//! as `ledger::metering` types and written from them; states, resources, kinds and units are
//! stored as their text (`running`, `gb_second`).

use crate::entity::{container, meter, settlement, usage_line};
use crate::ledger::Credits;
use crate::ledger::metering::{ContainerState, Meter, MeteredContainer, Resource, StorageMeter, UsageLine, line_day};
use crate::store::keyset::{self, Page, Window};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::str::FromStr;

pub async fn container(conn: &impl ConnectionTrait, account_id: i64, external_id: &str) -> Result<Option<MeteredContainer>, DbErr> {
    container::Entity::find()
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::ExternalId.eq(external_id))
        .one(conn)
        .await?
        .map(metered)
        .transpose()
}

/// The account's containers in id order, as a settlement sees them.
pub async fn metered_containers(conn: &impl ConnectionTrait, account_id: i64) -> Result<Vec<MeteredContainer>, DbErr> {
    containers(conn, account_id).await?.into_iter().map(metered).collect()
}

/// The account's containers in id order, as rows (the low-credit notice reads their rates).
pub async fn containers(conn: &impl ConnectionTrait, account_id: i64) -> Result<Vec<container::Model>, DbErr> {
    container::Entity::find().filter(container::Column::AccountId.eq(account_id)).order_by_asc(container::Column::Id).all(conn).await
}

/// The containers of any of these accounts.
pub async fn containers_of_accounts(conn: &impl ConnectionTrait, account_ids: &[i64]) -> Result<Vec<container::Model>, DbErr> {
    container::Entity::find()
        .filter(container::Column::AccountId.is_in(account_ids.iter().copied()))
        .order_by_asc(container::Column::Id)
        .all(conn)
        .await
}

pub struct NewContainer<'a> {
    pub account_id: i64,
    pub external_id: &'a str,
    pub tier: &'a str,
    pub code_supporter: bool,
    pub now: DateTime<Utc>,
}

pub async fn insert_container(conn: &impl ConnectionTrait, new: NewContainer<'_>) -> Result<MeteredContainer, DbErr> {
    let row = container::ActiveModel {
        account_id: Set(new.account_id),
        external_id: Set(new.external_id.to_string()),
        tier: Set(new.tier.to_string()),
        code_supporter: Set(new.code_supporter),
        state: Set(ContainerState::Running.to_string()),
        storage_bytes: Set(0),
        billed_until: Set(new.now),
        pending_traffic_bytes: Set(0),
        created_at: Set(new.now),
        updated_at: Set(new.now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    metered(row)
}

/// Writes what a container's metering changes: tier, add-on, state, storage, how far it is
/// charged, its pending traffic.
pub async fn save_container(conn: &impl ConnectionTrait, c: &MeteredContainer) -> Result<(), DbErr> {
    container::Entity::update_many()
        .col_expr(container::Column::Tier, Expr::value(c.tier.clone()))
        .col_expr(container::Column::CodeSupporter, Expr::value(c.code_supporter))
        .col_expr(container::Column::State, Expr::value(c.state.to_string()))
        .col_expr(container::Column::StorageBytes, Expr::value(signed("storage bytes", c.storage_bytes)?))
        .col_expr(container::Column::BilledUntil, Expr::value(c.billed_until))
        .col_expr(container::Column::PendingTrafficBytes, Expr::value(signed("traffic bytes", c.pending_traffic_bytes)?))
        .col_expr(container::Column::UpdatedAt, Expr::value(c.updated_at))
        .filter(container::Column::Id.eq(c.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A row as a settlement sees it; a state or a count that does not read is an error, never a
/// default.
fn metered(row: container::Model) -> Result<MeteredContainer, DbErr> {
    let state = ContainerState::from_str(&row.state).map_err(|_| DbErr::Custom(format!("container {}: state {:?}", row.id, row.state)))?;
    let unsigned = |what: &str, n: i64| u64::try_from(n).map_err(|_| DbErr::Custom(format!("container {}: negative {what}", row.id)));
    Ok(MeteredContainer {
        id: row.id,
        storage_bytes: unsigned("storage", row.storage_bytes)?,
        pending_traffic_bytes: unsigned("traffic", row.pending_traffic_bytes)?,
        external_id: row.external_id,
        tier: row.tier,
        code_supporter: row.code_supporter,
        state,
        billed_until: row.billed_until,
        updated_at: row.updated_at,
    })
}

fn signed(what: &str, n: u64) -> Result<i64, DbErr> {
    i64::try_from(n).map_err(|_| DbErr::Custom(format!("{what} {n} out of range")))
}

/// The account's meters, created on first use.
pub async fn meter(conn: &impl ConnectionTrait, account_id: i64, month: &str, now: DateTime<Utc>) -> Result<Meter, DbErr> {
    if let Some(found) = meter::Entity::find_by_id(account_id).one(conn).await? {
        return typed_meter(found);
    }
    let row = meter::ActiveModel {
        account_id: Set(account_id),
        storage_accrued_until: Set(now),
        storage_excess_gb_seconds: Set("0".into()),
        traffic_month: Set(month.to_string()),
        traffic_month_bytes: Set(0),
        ai_trial_uses: Set(0),
    }
    .insert(conn)
    .await?;
    typed_meter(row)
}

pub async fn save_meter(conn: &impl ConnectionTrait, account_id: i64, m: &Meter) -> Result<(), DbErr> {
    let uses = i32::try_from(m.ai_trial_uses).map_err(|_| DbErr::Custom(format!("meter {account_id}: trial uses out of range")))?;
    meter::Entity::update_many()
        .col_expr(meter::Column::StorageAccruedUntil, Expr::value(m.storage.accrued_until))
        // Normalized, so the stored text of a value is always the same ("0", not "0.000").
        .col_expr(meter::Column::StorageExcessGbSeconds, Expr::value(m.storage.excess_gb_seconds.normalize().to_string()))
        .col_expr(meter::Column::TrafficMonth, Expr::value(m.traffic_month.clone()))
        .col_expr(meter::Column::TrafficMonthBytes, Expr::value(signed("traffic this month", m.traffic_month_bytes)?))
        .col_expr(meter::Column::AiTrialUses, Expr::value(uses))
        .filter(meter::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

fn typed_meter(row: meter::Model) -> Result<Meter, DbErr> {
    let bad = |what: &str| DbErr::Custom(format!("meter {}: {what}", row.account_id));
    Ok(Meter {
        storage: StorageMeter {
            accrued_until: row.storage_accrued_until,
            excess_gb_seconds: Decimal::from_str(&row.storage_excess_gb_seconds).map_err(|e| bad(&e.to_string()))?,
        },
        traffic_month_bytes: u64::try_from(row.traffic_month_bytes).map_err(|_| bad("negative traffic"))?,
        ai_trial_uses: u32::try_from(row.ai_trial_uses).map_err(|_| bad("negative trial uses"))?,
        traffic_month: row.traffic_month,
    })
}

/// Accounts with meters after `cursor`, in id order: the monthly settlement's sweep.
pub async fn metered_accounts_after(conn: &impl ConnectionTrait, cursor: i64, limit: u64) -> Result<Vec<i64>, DbErr> {
    meter::Entity::find()
        .select_only()
        .column(meter::Column::AccountId)
        .filter(meter::Column::AccountId.gt(cursor))
        .order_by_asc(meter::Column::AccountId)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
}

pub struct NewSettlement<'a> {
    pub account_id: i64,
    pub trigger: &'a str,
    pub month: &'a str,
    pub total_micros: i64,
    pub charged_micros: i64,
    pub uncollected_micros: i64,
    pub entry_id: Option<i64>,
    pub idempotency_key: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub async fn insert_settlement(conn: &impl ConnectionTrait, new: NewSettlement<'_>) -> Result<settlement::Model, DbErr> {
    settlement::ActiveModel {
        account_id: Set(new.account_id),
        trigger: Set(new.trigger.to_string()),
        month: Set(new.month.to_string()),
        total_micros: Set(new.total_micros),
        charged_micros: Set(new.charged_micros),
        uncollected_micros: Set(new.uncollected_micros),
        entry_id: Set(new.entry_id),
        idempotency_key: Set(new.idempotency_key.map(str::to_string)),
        created_at: Set(new.now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// A settlement's lines, in one statement.
pub async fn insert_lines(conn: &impl ConnectionTrait, settlement_id: i64, account_id: i64, lines: &[UsageLine]) -> Result<(), DbErr> {
    if lines.is_empty() {
        return Ok(());
    }
    let rows = lines.iter().map(|l| usage_line::ActiveModel {
        settlement_id: Set(settlement_id),
        account_id: Set(account_id),
        container_id: Set(l.container_id),
        resource: Set(l.resource.to_string()),
        kind: Set(l.kind.map(|k| k.to_string())),
        model: Set(l.model.clone()),
        quantity: Set(l.quantity.to_string()),
        unit: Set(l.unit.to_string()),
        started_at: Set(l.started_at),
        ended_at: Set(l.ended_at),
        day: Set(line_day(l.started_at, l.ended_at).to_string()),
        amount_micros: Set(l.amount.micros()),
        ..Default::default()
    });
    usage_line::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// A stored usage line: its id (the AI logs page by it) and the line, whose `container` (the
/// product's id) the reader fills in from `container_id`.
pub struct StoredLine {
    pub id: i64,
    pub line: UsageLine,
}

fn stored_line(row: usage_line::Model) -> Result<StoredLine, DbErr> {
    let bad = |what: &str, text: &str| DbErr::Custom(format!("usage line {}: {what} {text:?}", row.id));
    let line = UsageLine {
        container_id: row.container_id,
        container: None,
        resource: FromStr::from_str(&row.resource).map_err(|_| bad("resource", &row.resource))?,
        kind: row.kind.as_deref().map(|k| FromStr::from_str(k).map_err(|_| bad("kind", k))).transpose()?,
        model: row.model.clone(),
        quantity: Decimal::from_str(&row.quantity).map_err(|_| bad("quantity", &row.quantity))?,
        unit: FromStr::from_str(&row.unit).map_err(|_| bad("unit", &row.unit))?,
        started_at: row.started_at,
        ended_at: row.ended_at,
        amount: Credits::from_micros(row.amount_micros),
    };
    Ok(StoredLine { id: row.id, line })
}

pub async fn settlements_in(conn: &impl ConnectionTrait, account_id: i64, month: &str) -> Result<Vec<settlement::Model>, DbErr> {
    settlement::Entity::find()
        .filter(settlement::Column::AccountId.eq(account_id))
        .filter(settlement::Column::Month.eq(month))
        .order_by_asc(settlement::Column::Id)
        .all(conn)
        .await
}

pub async fn lines_of(conn: &impl ConnectionTrait, settlement_ids: &[i64]) -> Result<Vec<StoredLine>, DbErr> {
    if settlement_ids.is_empty() {
        return Ok(Vec::new());
    }
    usage_line::Entity::find()
        .filter(usage_line::Column::SettlementId.is_in(settlement_ids.iter().copied()))
        .order_by_asc(usage_line::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(stored_line)
        .collect()
}

pub async fn lines_on_day(conn: &impl ConnectionTrait, account_id: i64, day: &str) -> Result<Vec<StoredLine>, DbErr> {
    usage_line::Entity::find()
        .filter(usage_line::Column::AccountId.eq(account_id))
        .filter(usage_line::Column::Day.eq(day))
        .filter(usage_line::Column::ContainerId.is_not_null())
        .order_by_asc(usage_line::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(stored_line)
        .collect()
}

/// AI lines of an account in a month.
fn ai_lines_of(account_id: i64, month: &str) -> sea_orm::Select<usage_line::Entity> {
    usage_line::Entity::find()
        .filter(usage_line::Column::AccountId.eq(account_id))
        .filter(usage_line::Column::Resource.eq(Resource::Ai.to_string()))
        .filter(usage_line::Column::Day.starts_with(format!("{month}-")))
}

/// A page of an account's AI lines in a month, newest first.
pub async fn ai_lines(conn: &impl ConnectionTrait, account_id: i64, month: &str, window: &Window) -> Result<Page<StoredLine>, DbErr> {
    keyset::newest_first(conn, ai_lines_of(account_id, month), usage_line::Column::Id, window).await?.try_map(stored_line)
}

/// How many AI lines the account has in the month.
pub async fn ai_lines_count(conn: &impl ConnectionTrait, account_id: i64, month: &str) -> Result<u64, DbErr> {
    keyset::count(conn, ai_lines_of(account_id, month)).await
}

/// Marks every running container of an account stopped, and those holding storage inactive.
pub async fn stop_all(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let stopped = container::Entity::update_many()
        .col_expr(container::Column::State, Expr::value(ContainerState::Stopped.to_string()))
        .col_expr(container::Column::UpdatedAt, Expr::value(now))
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::State.eq(ContainerState::Running.to_string()))
        .exec(conn)
        .await?;
    container::Entity::update_many()
        .col_expr(container::Column::State, Expr::value(ContainerState::Inactive.to_string()))
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::StorageBytes.gt(0))
        .exec(conn)
        .await?;
    Ok(stopped.rows_affected)
}
