//! Containers, meters, settlements and their usage lines.

use crate::entity::{container, meter, settlement, usage_line};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};

pub async fn container(conn: &impl ConnectionTrait, account_id: i64, external_id: &str) -> Result<Option<container::Model>, DbErr> {
    container::Entity::find()
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::ExternalId.eq(external_id))
        .one(conn)
        .await
}

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

pub async fn containers_by_ids(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<container::Model>, DbErr> {
    container::Entity::find().filter(container::Column::Id.is_in(ids.iter().copied())).all(conn).await
}

pub struct NewContainer<'a> {
    pub account_id: i64,
    pub external_id: &'a str,
    pub tier: &'a str,
    pub code_supporter: bool,
    pub now: DateTime<Utc>,
}

pub async fn insert_container(conn: &impl ConnectionTrait, new: NewContainer<'_>) -> Result<container::Model, DbErr> {
    container::ActiveModel {
        account_id: Set(new.account_id),
        external_id: Set(new.external_id.to_string()),
        tier: Set(new.tier.to_string()),
        code_supporter: Set(new.code_supporter),
        state: Set("running".into()),
        storage_bytes: Set(0),
        billed_until: Set(new.now),
        pending_traffic_bytes: Set(0),
        created_at: Set(new.now),
        updated_at: Set(new.now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn save_container(conn: &impl ConnectionTrait, model: container::Model) -> Result<container::Model, DbErr> {
    let mut active = model.into_active_model();
    for column in [
        container::Column::Tier,
        container::Column::CodeSupporter,
        container::Column::State,
        container::Column::StorageBytes,
        container::Column::BilledUntil,
        container::Column::PendingTrafficBytes,
        container::Column::UpdatedAt,
    ] {
        active.reset(column);
    }
    active.update(conn).await
}

/// The account's meters, created on first use.
pub async fn meter(conn: &impl ConnectionTrait, account_id: i64, month: &str, now: DateTime<Utc>) -> Result<meter::Model, DbErr> {
    if let Some(found) = meter::Entity::find_by_id(account_id).one(conn).await? {
        return Ok(found);
    }
    meter::ActiveModel {
        account_id: Set(account_id),
        storage_accrued_until: Set(now),
        storage_excess_gb_seconds: Set("0".into()),
        traffic_month: Set(month.to_string()),
        traffic_month_bytes: Set(0),
        ai_trial_uses: Set(0),
    }
    .insert(conn)
    .await
}

pub async fn save_meter(conn: &impl ConnectionTrait, model: meter::Model) -> Result<meter::Model, DbErr> {
    let mut active = model.into_active_model();
    for column in [
        meter::Column::StorageAccruedUntil,
        meter::Column::StorageExcessGbSeconds,
        meter::Column::TrafficMonth,
        meter::Column::TrafficMonthBytes,
        meter::Column::AiTrialUses,
    ] {
        active.reset(column);
    }
    active.update(conn).await
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

/// One priced line of a settlement, as it is stored.
pub struct NewLine<'a> {
    pub container_id: Option<i64>,
    pub resource: &'a str,
    pub kind: Option<&'a str>,
    pub model: Option<&'a str>,
    pub quantity: Decimal,
    pub unit: &'a str,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The UTC day the line belongs to.
    pub day: NaiveDate,
    pub amount_micros: i64,
}

/// A settlement's lines, in one statement.
pub async fn insert_lines(conn: &impl ConnectionTrait, settlement_id: i64, account_id: i64, lines: &[NewLine<'_>]) -> Result<(), DbErr> {
    if lines.is_empty() {
        return Ok(());
    }
    let rows = lines.iter().map(|l| usage_line::ActiveModel {
        settlement_id: Set(settlement_id),
        account_id: Set(account_id),
        container_id: Set(l.container_id),
        resource: Set(l.resource.to_string()),
        kind: Set(l.kind.map(str::to_string)),
        model: Set(l.model.map(str::to_string)),
        quantity: Set(l.quantity.to_string()),
        unit: Set(l.unit.to_string()),
        started_at: Set(l.started_at),
        ended_at: Set(l.ended_at),
        day: Set(l.day.to_string()),
        amount_micros: Set(l.amount_micros),
        ..Default::default()
    });
    usage_line::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn settlements_in(conn: &impl ConnectionTrait, account_id: i64, month: &str) -> Result<Vec<settlement::Model>, DbErr> {
    settlement::Entity::find()
        .filter(settlement::Column::AccountId.eq(account_id))
        .filter(settlement::Column::Month.eq(month))
        .order_by_asc(settlement::Column::Id)
        .all(conn)
        .await
}

pub async fn lines_of(conn: &impl ConnectionTrait, settlement_ids: &[i64]) -> Result<Vec<usage_line::Model>, DbErr> {
    if settlement_ids.is_empty() {
        return Ok(Vec::new());
    }
    usage_line::Entity::find()
        .filter(usage_line::Column::SettlementId.is_in(settlement_ids.iter().copied()))
        .order_by_asc(usage_line::Column::Id)
        .all(conn)
        .await
}

pub async fn lines_on_day(conn: &impl ConnectionTrait, account_id: i64, day: &str) -> Result<Vec<usage_line::Model>, DbErr> {
    usage_line::Entity::find()
        .filter(usage_line::Column::AccountId.eq(account_id))
        .filter(usage_line::Column::Day.eq(day))
        .filter(usage_line::Column::ContainerId.is_not_null())
        .order_by_asc(usage_line::Column::Id)
        .all(conn)
        .await
}

/// AI lines of an account in a month, newest first, before `before` (a line id).
pub async fn ai_lines(
    conn: &impl ConnectionTrait,
    account_id: i64,
    month: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<usage_line::Model>, DbErr> {
    let mut query = usage_line::Entity::find()
        .filter(usage_line::Column::AccountId.eq(account_id))
        .filter(usage_line::Column::Resource.eq("ai"))
        .filter(usage_line::Column::Day.starts_with(format!("{month}-")));
    if let Some(before) = before {
        query = query.filter(usage_line::Column::Id.lt(before));
    }
    query.order_by_desc(usage_line::Column::Id).limit(limit).all(conn).await
}

/// Marks every running container of an account stopped, and those holding storage inactive.
pub async fn stop_all(conn: &impl ConnectionTrait, account_id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let stopped = container::Entity::update_many()
        .col_expr(container::Column::State, Expr::value("stopped"))
        .col_expr(container::Column::UpdatedAt, Expr::value(now))
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::State.eq("running"))
        .exec(conn)
        .await?;
    container::Entity::update_many()
        .col_expr(container::Column::State, Expr::value("inactive"))
        .filter(container::Column::AccountId.eq(account_id))
        .filter(container::Column::StorageBytes.gt(0))
        .exec(conn)
        .await?;
    Ok(stopped.rows_affected)
}
