//! Auto top-ups charged through Stripe (issue 27): a pending auto top-up (`service::auto_topup`
//! made it, in the transaction that lowered the balance) of an account whose product saved a
//! card (`setAutoTopUp`'s `stripePaymentMethod`) is charged off-session by the
//! `ChargeAutoTopUps` job, outside any transaction, under an idempotency key of the purchase's,
//! so a retry after a timeout or a crash never charges twice. Stripe's answer settles it at once
//! where it can (succeeded: confirmed with the PaymentIntent as reference; declined: failed,
//! which counts toward turning auto top-up off); a payment still processing is settled by its
//! webhook (`service::stripe`), which finds the purchase by the PaymentIntent's metadata.

use crate::ledger::Credits;
use crate::service::{Engine, ServiceError};
use crate::store;
use crate::stripe::client::{OffSessionPayment, StripeError};
use chrono::{DateTime, Utc};

/// Top-ups charged per batch of the job: each is a call to Stripe.
pub const MAX_TOPUP_CHARGE_BATCH: u64 = 20;

impl Engine {
    /// One batch of the `ChargeAutoTopUps` job: how many top-ups Stripe answered for. Nothing
    /// without a Stripe key. Stops at the first call Stripe did not answer (the next tick
    /// retries it, under the same key).
    pub async fn charge_auto_topups(&self, now: DateTime<Utc>, limit: u64) -> Result<u64, ServiceError> {
        let Some(stripe) = self.stripe.client.clone() else {
            return Ok(0);
        };
        let due = store::auto_topups::to_charge(&self.db, limit).await?;
        let mut answered = 0;
        for (purchase, customer, method) in due {
            let description = format!("Auto top-up: {} credits", Credits::from_micros(purchase.credits_micros));
            let request = OffSessionPayment {
                purchase_id: purchase.id,
                amount_minor: purchase.price_minor,
                currency: &purchase.currency,
                customer: &customer,
                payment_method: &method,
                description: &description,
            };
            let key = format!("stripe-topup-{}", purchase.id);
            match stripe.create_off_session_payment(&request).await {
                Ok(intent) => {
                    store::purchases::set_payment_intent(&self.db, purchase.id, &intent.id).await?;
                    match intent.status.as_str() {
                        "succeeded" => match self.confirm(purchase.id, &intent.id, intent.amount_received, now).await {
                            Ok(_) => {}
                            // Its webhook finds the same refusal and tells the operator.
                            Err(e @ (ServiceError::Refused(_) | ServiceError::BadInput(_) | ServiceError::IdempotencyConflict(_))) => {
                                tracing::warn!(purchase.id = purchase.id, error = %e, "an auto top-up was paid but not confirmed");
                            }
                            Err(e) => return Err(e),
                        },
                        // A card that asks for the customer (3-D Secure) cannot be charged
                        // off-session: that is a failed top-up.
                        "requires_action" | "requires_payment_method" | "canceled" => {
                            let why = format!("Stripe: the off-session payment ended {}", intent.status);
                            self.end_top_up(purchase.id, &why, Some(&intent.id), &key, now).await?;
                        }
                        // processing: its webhook settles it.
                        _ => {}
                    }
                    answered += 1;
                }
                Err(StripeError::Refused { message, payment_intent, .. }) => {
                    if let Some(intent) = &payment_intent {
                        store::purchases::set_payment_intent(&self.db, purchase.id, intent).await?;
                    }
                    let why = format!("Stripe: {}", message.chars().take(200).collect::<String>());
                    self.end_top_up(purchase.id, &why, payment_intent.as_deref(), &key, now).await?;
                    answered += 1;
                }
                Err(e @ StripeError::Unreachable(_)) => {
                    tracing::warn!(purchase.id = purchase.id, error = %e, "auto top-up not charged yet: Stripe could not be reached");
                    break;
                }
            }
        }
        Ok(answered)
    }

    /// Fails a top-up's purchase; one that already ended (paid by its webhook, expired) stays.
    async fn end_top_up(
        &self,
        purchase_id: i64,
        why: &str,
        reference: Option<&str>,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        match self.fail_purchase(purchase_id, why, reference, key, now).await {
            Ok(_) | Err(ServiceError::Refused(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
