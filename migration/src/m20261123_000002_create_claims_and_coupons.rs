//! Claims (one per account, kind and period: a day's check-in, a month's plan credits) and
//! coupons with their redemptions and the failed guesses that throttle redemption.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Lots {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Claims {
    Table,
    Id,
    AccountId,
    Kind,
    Period,
    LotId,
    AmountMicros,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Coupons {
    Table,
    Id,
    Code,
    CreditsMicros,
    ExpiresAt,
    ValidFor,
    StartsAt,
    EndsAt,
    MaxRedemptions,
    Redemptions,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CouponRedemptions {
    Table,
    Id,
    CouponId,
    AccountId,
    LotId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CouponFailures {
    Table,
    Id,
    AccountId,
    AttemptedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Claims::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Claims::Id))
                    .col(big_integer(Claims::AccountId))
                    .col(string_len(Claims::Kind, 32))
                    .col(string_len(Claims::Period, 32))
                    .col(big_integer_null(Claims::LotId))
                    .col(big_integer(Claims::AmountMicros))
                    .col(timestamp_with_time_zone(Claims::CreatedAt))
                    .foreign_key(ForeignKey::create().from(Claims::Table, Claims::AccountId).to(Accounts::Table, Accounts::Id))
                    .foreign_key(ForeignKey::create().from(Claims::Table, Claims::LotId).to(Lots::Table, Lots::Id))
                    .to_owned(),
            )
            .await?;
        // The unique key is what makes "once per period" hold across processes.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("claims_once_per_period")
                    .table(Claims::Table)
                    .col(Claims::AccountId)
                    .col(Claims::Kind)
                    .col(Claims::Period)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Coupons::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Coupons::Id))
                    .col(string_len_uniq(Coupons::Code, 64))
                    .col(big_integer(Coupons::CreditsMicros).check(Expr::col(Coupons::CreditsMicros).gt(0)))
                    .col(timestamp_with_time_zone_null(Coupons::ExpiresAt))
                    .col(string_len_null(Coupons::ValidFor, 32))
                    .col(timestamp_with_time_zone_null(Coupons::StartsAt))
                    .col(timestamp_with_time_zone_null(Coupons::EndsAt))
                    .col(big_integer_null(Coupons::MaxRedemptions))
                    .col(big_integer(Coupons::Redemptions).check(Expr::col(Coupons::Redemptions).gte(0)))
                    .col(string_len_null(Coupons::Reason, 500))
                    .col(timestamp_with_time_zone(Coupons::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CouponRedemptions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CouponRedemptions::Id))
                    .col(big_integer(CouponRedemptions::CouponId))
                    .col(big_integer(CouponRedemptions::AccountId))
                    .col(big_integer(CouponRedemptions::LotId))
                    .col(timestamp_with_time_zone(CouponRedemptions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create().from(CouponRedemptions::Table, CouponRedemptions::CouponId).to(Coupons::Table, Coupons::Id),
                    )
                    .foreign_key(
                        ForeignKey::create().from(CouponRedemptions::Table, CouponRedemptions::AccountId).to(Accounts::Table, Accounts::Id),
                    )
                    .foreign_key(ForeignKey::create().from(CouponRedemptions::Table, CouponRedemptions::LotId).to(Lots::Table, Lots::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("coupon_redeemed_once_per_account")
                    .table(CouponRedemptions::Table)
                    .col(CouponRedemptions::CouponId)
                    .col(CouponRedemptions::AccountId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CouponFailures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CouponFailures::Id))
                    .col(big_integer(CouponFailures::AccountId))
                    .col(timestamp_with_time_zone(CouponFailures::AttemptedAt))
                    .foreign_key(
                        ForeignKey::create().from(CouponFailures::Table, CouponFailures::AccountId).to(Accounts::Table, Accounts::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("coupon_failures_account_time")
                    .table(CouponFailures::Table)
                    .col(CouponFailures::AccountId)
                    .col(CouponFailures::AttemptedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["coupon_failures", "coupon_redemptions", "coupons", "claims"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
