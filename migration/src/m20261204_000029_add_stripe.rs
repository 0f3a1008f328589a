//! Stripe (issue 27): the events received on `POST /webhooks/stripe`, one row per event id, so a
//! redelivered event changes nothing twice and an operator can see what each one did; and on a
//! purchase, the Checkout Session made for it (its id and URL, so a replayed `purchaseCredits`
//! hands out the same one) and the refund asked of Stripe (so its `charge.refunded` is known as
//! ours); the PaymentIntent made off-session for an auto top-up, and the saved card it is made
//! on (`auto_topups`: the Stripe customer and payment method the product registered). Null for
//! every row before, which were paid without Stripe.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
    EventId,
    EventType,
    ReceivedAt,
    PurchaseId,
    Outcome,
    Detail,
}

#[derive(DeriveIden)]
enum Purchases {
    Table,
    CheckoutSessionId,
    CheckoutUrl,
    StripeRefundId,
    StripePaymentIntentId,
}

#[derive(DeriveIden)]
enum AutoTopups {
    Table,
    StripeCustomerId,
    StripePaymentMethodId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StripeEvents::Table)
                    .if_not_exists()
                    .col(string_len(StripeEvents::EventId, 255).primary_key())
                    .col(string_len(StripeEvents::EventType, 128))
                    .col(timestamp_with_time_zone(StripeEvents::ReceivedAt))
                    .col(big_integer_null(StripeEvents::PurchaseId))
                    .col(string_len(StripeEvents::Outcome, 32))
                    .col(text_null(StripeEvents::Detail))
                    .to_owned(),
            )
            .await?;
        // One ALTER per column: SQLite takes one change per statement.
        for column in [Purchases::CheckoutSessionId, Purchases::StripeRefundId, Purchases::StripePaymentIntentId] {
            manager.alter_table(Table::alter().table(Purchases::Table).add_column(string_len_null(column, 255)).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table(Purchases::Table).add_column(text_null(Purchases::CheckoutUrl)).to_owned()).await?;
        for column in [AutoTopups::StripeCustomerId, AutoTopups::StripePaymentMethodId] {
            manager.alter_table(Table::alter().table(AutoTopups::Table).add_column(string_len_null(column, 255)).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [AutoTopups::StripePaymentMethodId, AutoTopups::StripeCustomerId] {
            manager.alter_table(Table::alter().table(AutoTopups::Table).drop_column(column).to_owned()).await?;
        }
        for column in [Purchases::StripePaymentIntentId, Purchases::CheckoutUrl, Purchases::StripeRefundId, Purchases::CheckoutSessionId] {
            manager.alter_table(Table::alter().table(Purchases::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(StripeEvents::Table).to_owned()).await
    }
}
