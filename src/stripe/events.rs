//! The Stripe events the ledger acts on, read from an event's JSON into what they mean for a
//! purchase. Field names and shapes are those of Stripe's API reference (Event, Checkout
//! Session, PaymentIntent, Charge). Anything else is acknowledged and ignored: Stripe sends
//! every event type the endpoint subscribes to, and an account often serves other products too,
//! so an event about a payment that carries no purchase id is not ours.

use serde_json::Value;

/// An event as received: its id (what redelivery repeats), its type and its object.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub object: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe event: {0}")]
pub struct NotAnEvent(pub &'static str);

impl Event {
    pub fn parse(body: &[u8]) -> Result<Event, NotAnEvent> {
        let value: Value = serde_json::from_slice(body).map_err(|_| NotAnEvent("the body is not JSON"))?;
        let text = |field: &'static str| value[field].as_str().filter(|s| !s.is_empty() && s.len() <= 255).ok_or(NotAnEvent(field));
        if value["object"] != "event" {
            return Err(NotAnEvent("object"));
        }
        let (id, kind) = (text("id")?.to_string(), text("type")?.to_string());
        let object = value["data"]["object"].clone();
        if !object.is_object() {
            return Err(NotAnEvent("data.object"));
        }
        Ok(Event { id, kind, object })
    }

    /// What the event means for the ledger.
    pub fn meaning(&self) -> Meaning {
        let o = &self.object;
        match self.kind.as_str() {
            "checkout.session.completed" if o["payment_status"] != "paid" => {
                // A delayed method (a bank debit): `async_payment_succeeded` or `_failed` follows.
                Meaning::Ignored("the session completed but its payment is not paid yet")
            }
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                let purchase = purchase_id(&o["metadata"]).or_else(|| id_number(&o["client_reference_id"]));
                match (purchase, id_of(&o["payment_intent"])) {
                    (None, _) => Meaning::Ignored("no purchase_id: not a purchase of ours"),
                    (Some(_), None) => Meaning::Ignored("the session names no PaymentIntent"),
                    (Some(purchase_id), Some(payment_intent)) => Meaning::Paid(Payment {
                        purchase_id,
                        payment_intent,
                        amount_minor: o["amount_total"].as_i64(),
                        currency: o["currency"].as_str().map(str::to_string),
                    }),
                }
            }
            "payment_intent.succeeded" => match (purchase_id(&o["metadata"]), id_of(&o["id"])) {
                (Some(purchase_id), Some(payment_intent)) => Meaning::Paid(Payment {
                    purchase_id,
                    payment_intent,
                    amount_minor: o["amount_received"].as_i64().or_else(|| o["amount"].as_i64()),
                    currency: o["currency"].as_str().map(str::to_string),
                }),
                _ => Meaning::Ignored("no purchase_id: not a purchase of ours"),
            },
            "checkout.session.async_payment_failed" => match purchase_id(&o["metadata"]).or_else(|| id_number(&o["client_reference_id"])) {
                Some(purchase_id) => Meaning::Failed(Failure {
                    purchase_id,
                    payment_intent: id_of(&o["payment_intent"]),
                    reason: "the payment failed (Checkout, delayed method)".to_string(),
                    checkout_may_retry: false,
                }),
                None => Meaning::Ignored("no purchase_id: not a purchase of ours"),
            },
            "payment_intent.payment_failed" => match purchase_id(&o["metadata"]) {
                Some(purchase_id) => {
                    let error = &o["last_payment_error"];
                    let reason = error["message"].as_str().or_else(|| error["code"].as_str()).unwrap_or("the payment failed");
                    Meaning::Failed(Failure {
                        purchase_id,
                        payment_intent: id_of(&o["id"]),
                        reason: format!("Stripe: {}", truncate(reason, 200)),
                        // The Checkout page lets the customer try another card after a decline:
                        // the session, not this attempt, decides (`client::CHECKOUT_FLOW`).
                        checkout_may_retry: o["metadata"]["credits_flow"] == crate::stripe::client::CHECKOUT_FLOW,
                    })
                }
                None => Meaning::Ignored("no purchase_id: not a purchase of ours"),
            },
            "charge.refunded" => match id_of(&o["payment_intent"]) {
                Some(payment_intent) => Meaning::Refunded(ChargeRefund {
                    payment_intent,
                    amount_refunded: o["amount_refunded"].as_i64().unwrap_or(0),
                    currency: o["currency"].as_str().map(str::to_string),
                    refund_ids: o["refunds"]["data"]
                        .as_array()
                        .map(|refunds| refunds.iter().filter_map(|r| id_of(&r["id"])).collect())
                        .unwrap_or_default(),
                }),
                None => Meaning::Ignored("the charge names no PaymentIntent"),
            },
            _ => Meaning::Ignored("an event type the ledger does not act on"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// A purchase was paid.
    Paid(Payment),
    /// A payment attempt for a purchase failed.
    Failed(Failure),
    /// A charge was refunded, in whole or in part (`amount_refunded` is the total so far).
    Refunded(ChargeRefund),
    /// Acknowledged, nothing to do; why.
    Ignored(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub purchase_id: i64,
    /// The payment's reference on the purchase.
    pub payment_intent: String,
    /// What was paid, in the currency's minor unit, where the event says.
    pub amount_minor: Option<i64>,
    /// Lower case, as Stripe writes it.
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub purchase_id: i64,
    pub payment_intent: Option<String>,
    pub reason: String,
    /// The attempt was made on a Checkout page, which stays open for another try: it does not
    /// end the purchase.
    pub checkout_may_retry: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRefund {
    pub payment_intent: String,
    /// Refunded of the charge so far, in the minor unit.
    pub amount_refunded: i64,
    pub currency: Option<String>,
    /// The refunds, when the event lists them (API versions before 2022-11-15 do).
    pub refund_ids: Vec<String>,
}

/// `metadata.purchase_id`, a positive integer.
fn purchase_id(metadata: &Value) -> Option<i64> {
    id_number(&metadata["purchase_id"])
}

fn id_number(value: &Value) -> Option<i64> {
    value.as_str().and_then(|s| s.parse::<i64>().ok()).filter(|id| *id > 0)
}

/// An object's id: the string itself, or an expanded object's `id`.
fn id_of(value: &Value) -> Option<String> {
    let id = value.as_str().or_else(|| value["id"].as_str())?;
    (!id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic())).then(|| id.to_string())
}

fn truncate(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Event {
        let body = json!({ "id": "evt_1", "object": "event", "type": kind, "data": { "object": object } });
        Event::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn checkout_pays_only_once_paid() {
        let session = json!({ "id": "cs_1", "object": "checkout.session", "payment_status": "unpaid",
            "payment_intent": "pi_1", "amount_total": 999, "currency": "usd", "metadata": { "purchase_id": "7" } });
        assert!(matches!(event("checkout.session.completed", session.clone()).meaning(), Meaning::Ignored(_)));
        let mut paid = session;
        paid["payment_status"] = json!("paid");
        let expected = Payment { purchase_id: 7, payment_intent: "pi_1".into(), amount_minor: Some(999), currency: Some("usd".into()) };
        assert_eq!(event("checkout.session.completed", paid.clone()).meaning(), Meaning::Paid(expected.clone()));
        assert_eq!(event("checkout.session.async_payment_succeeded", paid.clone()).meaning(), Meaning::Paid(expected));
        // client_reference_id stands in for the metadata.
        paid["metadata"] = json!({});
        paid["client_reference_id"] = json!("7");
        assert!(matches!(event("checkout.session.completed", paid).meaning(), Meaning::Paid(Payment { purchase_id: 7, .. })));
    }

    #[test]
    fn payment_intents_and_refunds_read_as_stripe_writes_them() {
        let intent = json!({ "id": "pi_2", "object": "payment_intent", "amount": 500, "amount_received": 500, "currency": "eur",
            "metadata": { "purchase_id": "8", "credits_flow": "checkout" },
            "last_payment_error": { "code": "card_declined", "message": "Your card was declined." } });
        assert!(matches!(
            event("payment_intent.succeeded", intent.clone()).meaning(),
            Meaning::Paid(Payment { purchase_id: 8, amount_minor: Some(500), .. })
        ));
        let Meaning::Failed(failure) = event("payment_intent.payment_failed", intent.clone()).meaning() else { panic!() };
        assert_eq!(failure.reason, "Stripe: Your card was declined.");
        assert!(failure.checkout_may_retry);
        let foreign = json!({ "id": "pi_3", "object": "payment_intent", "amount": 1, "currency": "usd", "metadata": {} });
        assert!(matches!(event("payment_intent.succeeded", foreign).meaning(), Meaning::Ignored(_)));
        let charge = json!({ "id": "ch_1", "object": "charge", "amount": 500, "amount_refunded": 200, "currency": "eur",
            "payment_intent": "pi_2", "refunded": false, "refunds": { "object": "list", "data": [{ "id": "re_1", "amount": 200 }] } });
        assert_eq!(
            event("charge.refunded", charge).meaning(),
            Meaning::Refunded(ChargeRefund {
                payment_intent: "pi_2".into(),
                amount_refunded: 200,
                currency: Some("eur".into()),
                refund_ids: vec!["re_1".into()]
            })
        );
        assert!(matches!(event("customer.created", json!({ "id": "cus_1" })).meaning(), Meaning::Ignored(_)));
        assert_eq!(Event::parse(b"{}"), Err(NotAnEvent("object")));
        assert_eq!(Event::parse(b"not json"), Err(NotAnEvent("the body is not JSON")));
    }
}
