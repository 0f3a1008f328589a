//! The adversarial suite: every mutation of the schema gets a catalog of bad inputs (amounts,
//! keys, ids, strings, numbers, enums, dates, tokens, replays and concurrent duplicates), one
//! field at a time on top of a request that would succeed, through the real API over both
//! transports (issue 17: the WebSocket skipped HTTP's limits and codes): HTTP (`/graphql`) and
//! the WebSocket (`/graphql/ws`, one graphql-transport-ws connection per token). Every operation
//! and every bad token is tried over both; the bad values alternate between them (every value
//! of a catalog reaches both across the fields that use it), which keeps CI's time near what
//! one transport took, and `CREDITS_ADVERSARIAL_TRANSPORTS=both` sends every value over both;
//! the concurrent duplicates race over both transports at once.
//!
//! After each case: every error carries a documented code (never `INTERNAL_SERVER_ERROR`, never a
//! dropped connection or a 5xx); a refused request left every table exactly as it was (a dump of
//! the whole database, compared row by row); an accepted one (a strange but valid input, such as
//! a unicode reason) leaves the audit balanced. A refused request that changed nothing cannot
//! unbalance the audit, so the audit runs after each accepted case and after each operation.
//! Cases a program turns off are still sent: a disabled feature must refuse bad input too.

use crate::on_both;
use crate::support::ws::{Socket, connect_as, execute, execute_all};
use crate::support::{Backend, SECRET, TestApp, TestDb};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The example program with gifts on (`[gifts]`), which no preset has.
const GIFTS_PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/gifts.toml");

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Http,
    WebSocket,
}

const TRANSPORTS: [Transport; 2] = [Transport::Http, Transport::WebSocket];

/// The transports a bad value is sent over: both when `CREDITS_ADVERSARIAL_TRANSPORTS=both`,
/// else one, alternating from one value to the next.
fn value_transports(alternate: &mut usize) -> Vec<Transport> {
    if std::env::var("CREDITS_ADVERSARIAL_TRANSPORTS").is_ok_and(|v| v == "both") {
        return TRANSPORTS.to_vec();
    }
    *alternate += 1;
    vec![TRANSPORTS[*alternate % 2]]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    /// A user token of this account, acting on it.
    User(&'static str),
    Service,
    Admin,
}

/// What a field holds, which picks its catalog of bad values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Credits or a price (`CreditAmount`): positive, at most 6 decimals.
    Amount,
    /// A measured quantity (`Quantity`: GB, bytes), or a capture, where zero is valid.
    Quantity,
    Key,
    /// An existing account the caller acts on.
    Account,
    /// The same, where a user's token may leave it out (its own account): null is valid.
    OptionalAccount,
    /// A new account's external id.
    NewAccount,
    /// A name looked up or stored as a label: feature, model, plan, tier, workload, coupon code.
    Label,
    /// Free text: reason, payment reference, container id, job input, transaction id.
    Text,
    /// A numeric id of a purchase, reservation or job.
    Id,
    /// An optional numeric id (a lot to take from): the same catalog, but null is valid.
    OptionalId,
    Int,
    Bool,
    Enum,
    Date,
    /// A validity such as "30 days".
    Validity,
    /// A `Metadata` object: string keys of `[A-Za-z0-9_.-]`, string values, bounded.
    Metadata,
    /// A lot's scope: a list of 1 to 16 feature names.
    Features,
}

struct Op {
    name: &'static str,
    program: &'static str,
    who: Who,
    query: &'static str,
    /// Valid variables; `$KEY` becomes a fresh idempotency key and `$N` a fresh number per
    /// case, `$PENDING`, `$UNPAID` (left for simulatePayment), `$TO_CANCEL`, `$TO_FAIL` (pending, for
    /// cancelPurchase and failPurchase), `$PAID`, `$BOB_PAID`, `$LOT`, `$LOT2`, `$RES`, `$RES2`, `$JOB`, `$JOB2` fixtures' ids.
    base: &'static str,
    fields: &'static [(&'static str, Kind)],
}

const OPS: &[Op] = &[
    Op {
        name: "createAccount",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: CreateAccountInput!) { createAccount(input: $input) { created } }",
        base: r#"{"input": {"externalId": "new-$N"}}"#,
        fields: &[("input.externalId", Kind::NewAccount), ("input.plan", Kind::Label), ("input.referralCode", Kind::Label)],
    },
    Op {
        name: "setAccountStatus",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: SetAccountStatusInput!) { setAccountStatus(input: $input) { id } }",
        base: r#"{"input": {"accountId": "bob", "status": "ACTIVE"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.status", Kind::Enum)],
    },
    Op {
        name: "setCreditMail",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($a: ID!, $e: Boolean!) { setCreditMail(accountId: $a, enabled: $e) { id } }",
        base: r#"{"a": "alice", "e": true}"#,
        fields: &[("a", Kind::Account), ("e", Kind::Bool)],
    },
    Op {
        name: "setAutoTopUp",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: SetAutoTopUpInput!) { setAutoTopUp(input: $input) { enabled threshold amount monthlyCap } }",
        base: r#"{"input": {"accountId": "alice", "enabled": true, "threshold": "10", "amount": "50", "monthlyCap": "500"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.enabled", Kind::Bool),
            ("input.threshold", Kind::Amount),
            ("input.amount", Kind::Amount),
            ("input.targetBalance", Kind::Amount),
            ("input.monthlyCap", Kind::Amount),
        ],
    },
    Op {
        name: "setSpendLimits",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: SetSpendLimitsInput!) { setSpendLimits(input: $input) { maxPerCharge } }",
        base: r#"{"input": {"accountId": "alice", "limits": [{"feature": "chat", "period": "DAY", "max": "100"}], "maxPerCharge": "50", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.limits.0.feature", Kind::Label),
            ("input.limits.0.period", Kind::Enum),
            ("input.limits.0.max", Kind::Amount),
            // The key is optional here (null is a valid value), so `Kind::Key`'s "null must be
            // refused" does not apply; the base still sends one.
            ("input.maxPerCharge", Kind::Amount),
        ],
    },
    Op {
        name: "changePlan",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: ChangePlanInput!) { changePlan(input: $input) { grantedLotId } }",
        base: r#"{"input": {"accountId": "bob", "plan": "free", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.plan", Kind::Label), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "purchaseCredits",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: PurchaseCreditsInput!) { purchaseCredits(input: $input) { id } }",
        base: r#"{"input": {"accountId": "alice", "credits": "50", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.credits", Kind::Amount),
            ("input.idempotencyKey", Kind::Key),
            ("input.metadata", Kind::Metadata),
        ],
    },
    Op {
        name: "confirmPurchase",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: ConfirmPurchaseInput!) { confirmPurchase(input: $input) { id status } }",
        base: r#"{"input": {"purchaseId": "$PENDING", "paymentReference": "ref-$N"}}"#,
        fields: &[("input.purchaseId", Kind::Id), ("input.paymentReference", Kind::Text), ("input.amountMinor", Kind::Int)],
    },
    Op {
        name: "cancelPurchase",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: CancelPurchaseInput!) { cancelPurchase(input: $input) { id status endedAt endReason } }",
        base: r#"{"input": {"purchaseId": "$TO_CANCEL", "reason": "adversarial", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.purchaseId", Kind::Id), ("input.reason", Kind::Text), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "failPurchase",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: FailPurchaseInput!) { failPurchase(input: $input) { id status endReason failedPaymentReference } }",
        base: r#"{"input": {"purchaseId": "$TO_FAIL", "reason": "declined", "paymentReference": "pi-$N", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.purchaseId", Kind::Id),
            ("input.reason", Kind::Text),
            ("input.paymentReference", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    Op {
        name: "simulatePayment",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($p: ID!) { simulatePayment(purchaseId: $p) { id status } }",
        base: r#"{"p": "$UNPAID"}"#,
        fields: &[("p", Kind::Id)],
    },
    Op {
        name: "createPortalSession",
        program: "arkain",
        who: Who::Service,
        query: "mutation($a: ID!, $t: Int) { createPortalSession(accountId: $a, ttl: $t) { url expiresAt } }",
        base: r#"{"a": "alice", "t": 600}"#,
        fields: &[("a", Kind::Account), ("t", Kind::Int)],
    },
    Op {
        name: "refundPurchase",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) { credits } }",
        base: r#"{"input": {"purchaseId": "$PAID", "idempotencyKey": "$KEY", "reason": "adversarial"}}"#,
        fields: &[("input.purchaseId", Kind::Id), ("input.idempotencyKey", Kind::Key), ("input.reason", Kind::Text)],
    },
    Op {
        name: "spendCredits",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { sequence amount } }",
        base: r#"{"input": {"accountId": "alice", "amount": "1", "feature": "chat", "idempotencyKey": "$KEY", "reason": "adversarial"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.amount", Kind::Amount),
            ("input.feature", Kind::Label),
            ("input.model", Kind::Label),
            ("input.reason", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
            ("input.metadata", Kind::Metadata),
        ],
    },
    Op {
        name: "spendCreditsBatch",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: SpendCreditsBatchInput!) { spendCreditsBatch(input: $input) { results { ok receipt { sequence amount } error { code } } } }",
        // One item: a bad value refuses its item only, and a second, good item would be charged
        // (items are independent), which the suite would read as a refusal that changed something.
        base: r#"{"input": {"items": [{"accountId": "alice", "amount": "1", "feature": "chat", "idempotencyKey": "$KEY", "reason": "adversarial"}]}}"#,
        fields: &[
            ("input.items.0.accountId", Kind::Account),
            ("input.items.0.amount", Kind::Amount),
            ("input.items.0.feature", Kind::Label),
            ("input.items.0.model", Kind::Label),
            ("input.items.0.reason", Kind::Text),
            ("input.items.0.idempotencyKey", Kind::Key),
            ("input.items.0.metadata", Kind::Metadata),
        ],
    },
    Op {
        name: "reserveCredits",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: ReserveCreditsInput!) { reserveCredits(input: $input) { reservationId amount } }",
        base: r#"{"input": {"accountId": "alice", "amount": "1", "feature": "chat", "idempotencyKey": "$KEY", "holdSeconds": 60}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.amount", Kind::Amount),
            ("input.feature", Kind::Label),
            ("input.holdSeconds", Kind::Int),
            ("input.reason", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
            ("input.metadata", Kind::Metadata),
        ],
    },
    Op {
        name: "captureReservation",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: CaptureReservationInput!) { captureReservation(input: $input) { status } }",
        base: r#"{"input": {"reservationId": "$RES", "amount": "1", "idempotencyKey": "$KEY"}}"#,
        // Capturing zero is valid: the work cost nothing and the whole hold goes back.
        fields: &[("input.reservationId", Kind::Id), ("input.amount", Kind::Quantity), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "releaseReservation",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: ReleaseReservationInput!) { releaseReservation(input: $input) { status } }",
        base: r#"{"input": {"reservationId": "$RES2", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.reservationId", Kind::Id), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "runJob",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($j: JobName!) { runJob(job: $j) { items periods } }",
        base: r#"{"j": "EXPIRE_RESERVATIONS"}"#,
        fields: &[("j", Kind::Enum)],
    },
    // No webhook receiver in this suite: the valid request is FEATURE_DISABLED, and every bad
    // one must be refused with a documented code and change nothing.
    Op {
        name: "redeliverEvent",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($id: ID!) { redeliverEvent(id: $id) { status } }",
        base: r#"{"id": "1"}"#,
        fields: &[("id", Kind::Id)],
    },
    // The first accepted void takes the lot; every later one finds nothing left (INVALID_STATE).
    Op {
        name: "voidLot",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($input: VoidLotInput!) { voidLot(input: $input) { voided } }",
        base: r#"{"input": {"lotId": "$LOT", "reason": "adversarial", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.lotId", Kind::Id), ("input.reason", Kind::Text), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "adjustCredits",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($input: AdjustCreditsInput!) { adjustCredits(input: $input) { amount } }",
        base: r#"{"input": {"accountId": "bob", "amount": "1", "reason": "adversarial", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.amount", Kind::Amount),
            ("input.lotId", Kind::OptionalId),
            ("input.reason", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    // Each accepted change moves the expiry (a later one, or one into the past, which expires
    // the lot at once; after that every change is INVALID_STATE: never reopened).
    Op {
        name: "changeLotExpiry",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($input: ChangeLotExpiryInput!) { changeLotExpiry(input: $input) { expiresAt } }",
        base: r#"{"input": {"lotId": "$LOT2", "expiresAt": "2030-01-01T00:00:00Z", "reason": "adversarial", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.lotId", Kind::Id),
            ("input.expiresAt", Kind::Date),
            ("input.reason", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    // Queues the whole audit, or answers the one already queued: no arguments to spoil, and
    // only an admin may.
    Op { name: "startAudit", program: "arkain", who: Who::Admin, query: "mutation { startAudit { id status } }", base: "{}", fields: &[] },
    // No valid code here (a link is made by the CLI): the valid-looking request is
    // UNAUTHENTICATED, and every odd code must be refused alike and change nothing (a code is
    // never half-redeemed).
    Op {
        name: "openConsoleSession",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($code: String!) { openConsoleSession(code: $code) { subject } }",
        base: r#"{"code": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        fields: &[("code", Kind::Text)],
    },
    // On the system clock the valid request is FEATURE_DISABLED (a test clock is a deployment
    // setting); bad input must still be refused with a documented code and change nothing.
    Op {
        name: "advanceClock",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($by: String, $to: DateTime) { advanceClock(by: $by, to: $to) { now } }",
        base: r#"{"by": "1 day"}"#,
        fields: &[("by", Kind::Validity), ("to", Kind::Date)],
    },
    Op {
        name: "grantCredits",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { lotId } }",
        base: r#"{"input": {"accountId": "bob", "amount": "1", "class": "PAID", "idempotencyKey": "$KEY", "reason": "adversarial"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.amount", Kind::Amount),
            ("input.class", Kind::Enum),
            ("input.source", Kind::Enum),
            ("input.expiresAt", Kind::Date),
            ("input.validFor", Kind::Validity),
            ("input.priority", Kind::Int),
            ("input.effectiveAt", Kind::Date),
            ("input.features", Kind::Features),
            ("input.reason", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
            ("input.metadata", Kind::Metadata),
        ],
    },
    Op {
        name: "createCoupon",
        program: "arkain",
        who: Who::Admin,
        query: "mutation($input: CreateCouponInput!) { createCoupon(input: $input) { code } }",
        base: r#"{"input": {"code": "ADV-$N", "credits": "1", "maxRedemptions": 10}}"#,
        fields: &[
            ("input.code", Kind::Label),
            ("input.credits", Kind::Amount),
            ("input.maxRedemptions", Kind::Int),
            ("input.startsAt", Kind::Date),
            ("input.endsAt", Kind::Date),
            ("input.expiresAt", Kind::Date),
            ("input.validFor", Kind::Validity),
            ("input.reason", Kind::Text),
        ],
    },
    Op {
        name: "redeemCoupon",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: RedeemCouponInput!) { redeemCoupon(input: $input) { amount } }",
        base: r#"{"input": {"accountId": "alice", "code": "ADV-OK", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.code", Kind::Label), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "giftCredits",
        program: GIFTS_PROGRAM,
        who: Who::User("alice"),
        query: "mutation($input: GiftCreditsInput!) { giftCredits(input: $input) { amount sentSequence } }",
        base: r#"{"input": {"fromAccount": "alice", "toAccount": "bob", "amount": "1", "idempotencyKey": "$KEY", "note": "adversarial"}}"#,
        fields: &[
            ("input.fromAccount", Kind::OptionalAccount),
            // Another account is the valid recipient: the catalog of ids, whose odd but valid ones
            // (unicode, SQL) name no account (NOT_FOUND).
            ("input.toAccount", Kind::NewAccount),
            ("input.amount", Kind::Amount),
            ("input.note", Kind::Text),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    Op {
        name: "checkIn",
        program: "arkain",
        who: Who::User("alice"),
        query: "mutation($input: CheckInInput!) { checkIn(input: $input) { amount } }",
        base: r#"{"input": {"accountId": "alice", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "startContainer",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: StartContainerInput!) { startContainer(input: $input) { container { state } } }",
        base: r#"{"input": {"accountId": "alice", "containerId": "c-$N", "tier": "micro", "idempotencyKey": "$KEY"}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.containerId", Kind::Label),
            ("input.tier", Kind::Label),
            ("input.codeSupporter", Kind::Bool),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    Op {
        name: "stopContainer",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: StopContainerInput!) { stopContainer(input: $input) { container { state } } }",
        base: r#"{"input": {"accountId": "alice", "containerId": "c-1", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.containerId", Kind::Label), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "recordUsage (storage)",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { settlement { total } } }",
        base: r#"{"input": {"accountId": "alice", "idempotencyKey": "$KEY", "storage": {"containerId": "c-1", "gb": "1"}}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.storage.gb", Kind::Quantity),
            ("input.storage.containerId", Kind::Label),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    Op {
        name: "recordUsage (traffic)",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { settlement { total } } }",
        base: r#"{"input": {"accountId": "alice", "idempotencyKey": "$KEY", "traffic": {"containerId": "c-1", "bytes": "1000"}}}"#,
        fields: &[("input.traffic.bytes", Kind::Quantity), ("input.traffic.containerId", Kind::Label), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "recordUsage (AI)",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { settlement { total } } }",
        base: r#"{"input": {"accountId": "alice", "idempotencyKey": "$KEY", "ai": {"kind": "CHAT", "model": "gpt-5-nano", "tokens": {"input": 1000, "output": 100}}}}"#,
        fields: &[
            ("input.ai.kind", Kind::Enum),
            ("input.ai.model", Kind::Label),
            ("input.ai.tokens.input", Kind::Int),
            ("input.ai.tokens.output", Kind::Int),
            ("input.ai.containerId", Kind::Label),
        ],
    },
    Op {
        name: "recordUsageBatch",
        program: "arkain",
        who: Who::Service,
        query: "mutation($input: RecordUsageBatchInput!) { recordUsageBatch(input: $input) { results { ok receipt { settlement { total } } error { code } } } }",
        // One item, as for spendCreditsBatch.
        base: r#"{"input": {"items": [{"accountId": "alice", "idempotencyKey": "$KEY", "ai": {"kind": "CHAT", "model": "gpt-5-nano", "tokens": {"input": 1000, "output": 100}}}]}}"#,
        fields: &[
            ("input.items.0.accountId", Kind::Account),
            ("input.items.0.idempotencyKey", Kind::Key),
            ("input.items.0.ai.kind", Kind::Enum),
            ("input.items.0.ai.model", Kind::Label),
            ("input.items.0.ai.tokens.input", Kind::Int),
            ("input.items.0.ai.containerId", Kind::Label),
        ],
    },
    Op {
        name: "claimLuckyCredits",
        program: "carat",
        who: Who::User("alice"),
        query: "mutation($input: ClaimLuckyCreditsInput!) { claimLuckyCredits(input: $input) { amount } }",
        base: r#"{"input": {"accountId": "alice", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "claimAdReward",
        program: "carat",
        who: Who::User("carol"),
        query: "mutation($input: ClaimAdRewardInput!) { claimAdReward(input: $input) { amount } }",
        base: r#"{"input": {"accountId": "carol", "idempotencyKey": "$KEY", "transactionId": "tx-ok"}}"#,
        fields: &[("input.accountId", Kind::Account), ("input.transactionId", Kind::Text), ("input.idempotencyKey", Kind::Key)],
    },
    Op {
        name: "setIdentityVerified",
        program: "archipelag",
        who: Who::Service,
        query: "mutation($a: ID!, $v: Boolean!) { setIdentityVerified(accountId: $a, verified: $v) { id } }",
        base: r#"{"a": "prov", "v": true}"#,
        fields: &[("a", Kind::Account), ("v", Kind::Bool)],
    },
    Op {
        name: "setAskingPrices",
        program: "archipelag",
        who: Who::User("alice"),
        query: "mutation($input: SetAskingPricesInput!) { setAskingPrices(input: $input) { price } }",
        base: r#"{"input": {"accountId": "alice", "hardwareClass": "ENTRY", "capacity": 1, "defaultPrice": "3", "prices": [{"workload": "llm-chat", "price": "3"}]}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.hardwareClass", Kind::Enum),
            ("input.capacity", Kind::Int),
            ("input.defaultPrice", Kind::Amount),
            ("input.prices.0.price", Kind::Amount),
            ("input.prices.0.workload", Kind::Label),
        ],
    },
    Op {
        name: "setBidPreference",
        program: "archipelag",
        who: Who::User("alice"),
        query: "mutation($a: ID!, $w: String!, $b: CreditAmount!) { setBidPreference(accountId: $a, workload: $w, bidPrice: $b) }",
        base: r#"{"a": "alice", "w": "llm-chat", "b": "5"}"#,
        fields: &[("a", Kind::Account), ("w", Kind::Label), ("b", Kind::Amount)],
    },
    Op {
        name: "submitJob",
        program: "archipelag",
        who: Who::User("alice"),
        query: "mutation($input: SubmitJobInput!) { submitJob(input: $input) { status } }",
        base: r#"{"input": {"accountId": "alice", "workload": "llm-chat", "inputs": [{"input": "i", "bidPrice": "5"}], "idempotencyKey": "$KEY", "priority": 50}}"#,
        fields: &[
            ("input.accountId", Kind::Account),
            ("input.workload", Kind::Label),
            ("input.inputs.0.input", Kind::Text),
            ("input.inputs.0.bidPrice", Kind::Amount),
            ("input.priority", Kind::Int),
            ("input.metadata", Kind::Metadata),
            ("input.idempotencyKey", Kind::Key),
        ],
    },
    Op {
        name: "completeJob",
        program: "archipelag",
        who: Who::Service,
        query: "mutation($input: EndJobInput!) { completeJob(input: $input) { status } }",
        base: r#"{"input": {"jobId": "$JOB", "idempotencyKey": "$KEY"}}"#,
        fields: &[("input.jobId", Kind::Id), ("input.idempotencyKey", Kind::Key), ("input.reason", Kind::Text)],
    },
    Op {
        name: "failJob",
        program: "archipelag",
        who: Who::Service,
        query: "mutation($input: EndJobInput!) { failJob(input: $input) { status } }",
        base: r#"{"input": {"jobId": "$JOB2", "idempotencyKey": "$KEY", "reason": "adversarial"}}"#,
        fields: &[("input.jobId", Kind::Id), ("input.idempotencyKey", Kind::Key), ("input.reason", Kind::Text)],
    },
];

/// Must this value be refused, or may a careful service accept it?
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Refused,
    Either,
}
use Expect::{Either, Refused};

fn catalog(kind: Kind) -> Vec<(&'static str, Value, Expect)> {
    let long = |n: usize| Value::String("x".repeat(n));
    let amounts = vec![
        ("negative", json!("-1"), Refused),
        ("zero", json!("0"), Refused),
        ("minus zero", json!("-0"), Refused),
        ("over-precise", json!("0.0000001"), Refused),
        ("over 1e9", json!("1000000001"), Refused),
        ("beyond i128", json!("79228162514264337593543950335"), Refused),
        ("far beyond", json!("1".repeat(400)), Refused),
        ("non-numeric", json!("abc"), Refused),
        ("empty", json!(""), Refused),
        ("NaN", json!("NaN"), Refused),
        ("infinity", json!("Infinity"), Refused),
        ("hex", json!("0x10"), Refused),
        ("comma", json!("1,5"), Refused),
        ("unicode digits", json!("١٢"), Refused),
        ("boolean", json!(true), Refused),
        ("object", json!({ "amount": 1 }), Refused),
        ("list", json!(["1"]), Refused),
        ("null", Value::Null, Either),
        // The API's grammar (domain.md, amounts): a JSON string of plain digits, at most 6
        // places; everything else, however a decimal parser might read it, is refused.
        ("exponent", json!("1e2"), Refused),
        ("exponent 1e3", json!("1e3"), Refused),
        ("padded", json!(" 2 "), Refused),
        ("leading zero", json!("01"), Refused),
        ("bare trailing point", json!("1."), Refused),
        ("bare leading point", json!(".5"), Refused),
        ("underscore", json!("1_000"), Refused),
        ("plus sign", json!("+5"), Refused),
        ("32 places", json!("0.00000099999999999999999999999999"), Refused),
        ("30 places, rounds to 1", json!("1.000000000000000000000000000001"), Refused),
        ("JSON number", json!(1.5), Refused),
        ("JSON integer", json!(5), Refused),
    ];
    match kind {
        Kind::Amount => amounts,
        // Storage is measured to 9 decimal places and traffic in bytes: fine values for credits
        // may be fine here.
        Kind::Quantity => amounts
            .into_iter()
            .map(|(l, v, e)| if matches!(l, "zero" | "over-precise" | "over 1e9") { (l, v, Either) } else { (l, v, e) })
            .collect(),
        Kind::Key => vec![
            ("empty", json!(""), Refused),
            ("space", json!("a key"), Refused),
            ("129 characters", json!("k".repeat(129)), Refused),
            ("20k characters", long(20_000), Refused),
            ("NUL", json!("k\u{0}k"), Refused),
            ("unicode", json!("ключ-🔑"), Refused),
            ("number", json!(42), Refused),
            ("null", Value::Null, Refused),
        ],
        Kind::Account => vec![
            ("unknown", json!("nobody-here"), Refused),
            ("empty", json!(""), Refused),
            ("NUL", json!("alice\u{0}"), Refused),
            ("padded", json!(" alice "), Refused),
            ("129 characters", json!("a".repeat(129)), Refused),
            ("20k characters", long(20_000), Refused),
            ("unicode look-alike", json!("аlice"), Refused),
            ("SQL", json!("alice' OR '1'='1"), Refused),
            ("LIKE wildcard", json!("ali%"), Refused),
            ("list", json!(["alice"]), Refused),
            ("null", Value::Null, Refused),
        ],
        Kind::NewAccount => vec![
            ("empty", json!(""), Refused),
            ("NUL", json!("new\u{0}"), Refused),
            ("padded", json!(" new "), Refused),
            ("129 characters", json!("n".repeat(129)), Refused),
            ("20k characters", long(20_000), Refused),
            ("null", Value::Null, Refused),
            ("unicode", json!("новый-🙂-$N"), Either),
            ("SQL", json!("x'); DROP TABLE accounts; -- $N"), Either),
        ],
        Kind::Label => vec![
            ("empty", json!(""), Refused),
            ("65 characters", json!("f".repeat(65)), Refused),
            ("20k characters", long(20_000), Refused),
            ("NUL", json!("f\u{0}"), Refused),
            ("newline", json!("f\nx"), Refused),
            ("SQL", json!("x'; DROP TABLE lots; --"), Refused),
            ("unicode", json!("功能"), Refused),
            ("number", json!(7), Refused),
            ("path", json!("../../etc/passwd"), Either),
        ],
        Kind::Text => vec![
            ("20k characters", long(20_000), Refused),
            ("NUL", json!("t\u{0}t"), Refused),
            ("number", json!(7), Refused),
            ("empty", json!(""), Either),
            ("unicode", json!("理由 🔥 $N"), Either),
            ("SQL", json!("'); DELETE FROM journal; -- $N"), Either),
            ("markup", json!("<script>alert($N)</script>"), Either),
        ],
        Kind::OptionalAccount => catalog(Kind::Account)
            .into_iter()
            .map(|(label, value, expect)| (label, value.clone(), if value.is_null() { Either } else { expect }))
            .collect(),
        Kind::OptionalId => catalog(Kind::Id)
            .into_iter()
            .map(|(label, value, expect)| (label, value.clone(), if value.is_null() { Either } else { expect }))
            .collect(),
        Kind::Id => vec![
            ("unknown", json!("999999"), Refused),
            ("zero", json!("0"), Refused),
            ("negative", json!("-1"), Refused),
            ("beyond i64", json!("99999999999999999999999"), Refused),
            ("non-numeric", json!("abc"), Refused),
            ("empty", json!(""), Refused),
            ("SQL", json!("1 OR 1=1"), Refused),
            ("null", Value::Null, Refused),
        ],
        Kind::Int => vec![
            ("negative", json!(-1), Refused),
            // Token counts are 64-bit; the other counts refuse it at coercion.
            ("beyond i32", json!(2_147_483_648i64), Either),
            ("beyond i64", json!(9_223_372_036_854_775_808u64), Refused),
            ("string", json!("5"), Refused),
            ("fraction", json!(1.5), Refused),
            ("zero", json!(0), Either),
            ("i32 max", json!(i32::MAX), Either),
        ],
        Kind::Bool => vec![("string", json!("true"), Refused), ("number", json!(1), Refused), ("null", Value::Null, Refused)],
        Kind::Enum => vec![("unknown", json!("NOPE"), Refused), ("lower case", json!("paid"), Refused), ("number", json!(1), Refused)],
        Kind::Date => vec![
            ("garbage", json!("yesterday"), Refused),
            ("no time zone", json!("2026-01-01T00:00:00"), Refused),
            ("month 13", json!("2026-13-01T00:00:00Z"), Refused),
            ("number", json!(1_700_000_000), Refused),
            ("year 1", json!("0001-01-01T00:00:00Z"), Either),
            ("year 9999", json!("9999-12-31T23:59:59Z"), Either),
        ],
        Kind::Metadata => vec![
            ("list", json!(["a"]), Refused),
            ("string", json!("k=v"), Refused),
            ("number value", json!({ "n": 1 }), Refused),
            ("float value", json!({ "n": 0.1 }), Refused),
            ("null value", json!({ "n": null }), Refused),
            ("nested object", json!({ "o": { "k": "v" } }), Refused),
            ("empty key", json!({ "": "v" }), Refused),
            ("key with a space", json!({ "a b": "v" }), Refused),
            ("SQL key", json!({ "k') OR 1=1 --": "v" }), Refused),
            ("JSON path key", json!({ "$.a[0]": "v" }), Refused),
            ("41-character key", json!({ "k".repeat(41): "v" }), Refused),
            ("empty value", json!({ "k": "" }), Refused),
            ("NUL value", json!({ "k": "a\u{0}b" }), Refused),
            ("501-character value", json!({ "k": "v".repeat(501) }), Refused),
            ("17 keys", Value::Object((0..17).map(|i| (format!("k{i}"), json!("v"))).collect()), Refused),
            ("over 4096 bytes", Value::Object((0..16).map(|i| (format!("k{i}"), json!("v".repeat(400)))).collect()), Refused),
            ("20k characters", json!({ "k": long(20_000) }), Refused),
            ("empty object", json!({}), Either),
            ("unicode value", json!({ "k": "理由 🔥" }), Either),
            ("SQL value", json!({ "k": "'); DELETE FROM journal_entries; --" }), Either),
        ],
        Kind::Features => vec![
            ("empty list", json!([]), Refused),
            ("empty name", json!([""]), Refused),
            ("name with a space", json!(["a b"]), Refused),
            ("65-character name", json!(["f".repeat(65)]), Refused),
            ("17 names", json!((0..17).map(|i| format!("f{i}")).collect::<Vec<_>>()), Refused),
            ("20k characters", json!([long(20_000)]), Refused),
            ("quote", json!(["a\"b"]), Refused),
            ("SQL", json!(["x'); DELETE FROM lots; --"]), Refused),
            ("LIKE wildcard", json!(["ai%"]), Refused),
            ("unicode", json!(["功能"]), Refused),
            ("null name", json!([null]), Refused),
            ("nested list", json!([["ai"]]), Refused),
            ("number", json!([7]), Refused),
            // One name is coerced to a list of one (GraphQL's input coercion).
            ("one name", json!("ai"), Either),
            ("repeats", json!(["ai", "ai"]), Either),
        ],
        Kind::Validity => vec![
            ("negative", json!("-1 days"), Refused),
            ("zero", json!("0 days"), Refused),
            ("garbage", json!("forever"), Refused),
            ("enormous", json!("99999999999999 years"), Refused),
            ("empty", json!(""), Refused),
            ("fraction", json!("1.5 days"), Refused),
        ],
    }
}

/// The codes a client may see. Anything else (`INTERNAL_SERVER_ERROR` above all) is a finding.
const DOCUMENTED: &[&str] = &[
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "INSUFFICIENT_CREDITS",
    "IDEMPOTENCY_CONFLICT",
    "ACCOUNT_NOT_ACTIVE",
    "ALREADY_CLAIMED",
    "COUPON_NOT_FOUND",
    "COUPON_NOT_YET_VALID",
    "COUPON_EXPIRED",
    "COUPON_EXHAUSTED",
    "COUPON_ALREADY_REDEEMED",
    "REFUND_NOT_ALLOWED",
    "TOO_MANY_ATTEMPTS",
    "FEATURE_DISABLED",
    "NOT_ELIGIBLE",
    "DAILY_LIMIT_REACHED",
    "RESERVATION_NOT_HELD",
    "INVALID_STATE",
    "IDENTITY_NOT_VERIFIED",
];

/// Tables a refused request may legitimately write: the coupon-guess throttle records failed
/// guesses (that is its job).
const MAY_CHANGE_ON_REFUSAL: &[&str] = &["coupon_failures"];

/// Tables that are not the service's state. `admin_actions` is the operators' log: every
/// accepted admin request adds a row, replays included (it records what was asked, not what
/// changed); tests/operator_records.rs checks what it holds. `claim_rates` counts claim
/// attempts, refused ones included, as a rate limit must (tests/limits.rs checks it).
const NOT_STATE: &[&str] = &["seaql_migrations", "Jobs", "Workers", "_sqlx_migrations", "admin_actions", "claim_rates"];

/// The whole database as text, a string per table, rows sorted.
struct Dumper {
    sql: String,
}

impl Dumper {
    async fn new(db: &DatabaseConnection) -> Dumper {
        let backend = db.get_database_backend();
        let sqlite = backend == sea_orm::DbBackend::Sqlite;
        let listing = if sqlite {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        } else {
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        };
        let rows = db.query_all_raw(Statement::from_string(backend, listing)).await.expect("the tables are listed");
        let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            let table: String = row.try_get("", "t").unwrap();
            if !NOT_STATE.contains(&table.as_str()) {
                tables.entry(table).or_default().push(row.try_get("", "c").unwrap());
            }
        }
        assert!(tables.len() > 15, "the schema was found: {tables:?}");
        let parts: Vec<String> = tables
            .iter()
            .map(|(table, columns)| {
                let row = columns.iter().map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '~')")).collect::<Vec<_>>().join(" || '|' || ");
                let dump = if sqlite {
                    format!("(SELECT COALESCE(group_concat(r, char(10)), '') FROM (SELECT {row} AS r FROM \"{table}\" ORDER BY r))")
                } else {
                    format!("(SELECT COALESCE(string_agg(r, chr(10) ORDER BY r), '') FROM (SELECT {row} AS r FROM \"{table}\") x)")
                };
                format!("SELECT '{table}' AS t, {dump} AS d")
            })
            .collect();
        Dumper { sql: parts.join(" UNION ALL ") }
    }

    async fn dump(&self, db: &DatabaseConnection) -> BTreeMap<String, String> {
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), self.sql.clone())).await.expect("the dump runs");
        rows.into_iter().map(|row| (row.try_get("", "t").unwrap(), row.try_get::<String>("", "d").unwrap())).collect()
    }
}

fn changed_tables(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before.keys().filter(|t| before.get(*t) != after.get(*t)).cloned().collect()
}

/// Posts a request; a dropped connection or a 5xx is a finding.
async fn post(app: &TestApp, token: Option<&str>, query: &str, variables: &Value) -> Value {
    let mut request = app.client.post(format!("{}/graphql", app.address)).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("the server dropped the request: {e}\n{query}\n{}", short(variables)));
    let status = response.status();
    assert!(!status.is_server_error(), "{status} for {query} {}", short(variables));
    response.json().await.unwrap_or_else(|e| panic!("not JSON ({e}) for {query} {}", short(variables)))
}

/// A value or response for a failure message: long strings cut short.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 400 {
        text
    } else {
        format!("{}... ({} bytes)", &text[..text.char_indices().take(400).last().map_or(0, |(i, _)| i)], text.len())
    }
}

fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut at = value;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = match part.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*part],
        };
    }
    at[parts[parts.len() - 1]] = new;
}

/// Tokens signed the way `AuthKeys` signs, with one thing wrong each.
fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| json!({ "role": "admin", "iss": iss, "aud": aud, "iat": now - 10, "exp": exp });
    let sign = |claims: Value, secret: &[u8]| encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap();
    let b64 = |bytes: &[u8]| {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    };
    let unsigned =
        format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims("credits", "credits-api", now + 600).to_string().as_bytes()));
    vec![
        ("no token", None),
        ("garbage", Some("not.a.token".to_string())),
        ("expired", Some(sign(claims("credits", "credits-api", now - 120), SECRET))),
        ("forged", Some(sign(claims("credits", "credits-api", now + 600), b"another-secret-another-secret-another"))),
        ("wrong audience", Some(sign(claims("credits", "billing-api", now + 600), SECRET))),
        ("wrong issuer", Some(sign(claims("someone-else", "credits-api", now + 600), SECRET))),
        ("alg none", Some(unsigned)),
        (
            "not valid yet",
            Some(sign(
                json!({ "role": "admin", "iss": "credits", "aud": "credits-api", "iat": now, "nbf": now + 600, "exp": now + 1200 }),
                SECRET,
            )),
        ),
    ]
}

struct Fixtures {
    ids: BTreeMap<&'static str, String>,
}

async fn ok(app: &TestApp, token: &str, query: &str, variables: Value, path: &[&str]) -> Value {
    let r = post(app, Some(token), query, &variables).await;
    let mut at = &r["data"];
    for p in path {
        at = &at[*p];
    }
    assert!(r["errors"].is_null() && !at.is_null(), "fixture {query}: {r}");
    at.clone()
}

async fn fixtures(app: &TestApp, program: &str) -> Fixtures {
    let mut ids = BTreeMap::new();
    if program == "carat" {
        // Within the lucky-credit promotion (April 2026), so the valid claim is valid.
        app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-04-10T10:00:00Z").unwrap().to_utc());
    }
    for account in ["alice", "bob", "prov"] {
        app.create_account(account).await;
        let r = app.grant(account, "1000", "PAID", None, &format!("fund-{account}")).await;
        assert!(r["errors"].is_null(), "{r}");
    }
    let (service, admin) = (app.service.clone(), app.admin.clone());
    match program {
        "arkain" => {
            let purchase =
                "mutation($a: ID!, $k: String!) { purchaseCredits(input: {accountId: $a, credits: \"50\", idempotencyKey: $k}) { id } }";
            let confirm = "mutation($p: ID!) { confirmPurchase(input: {purchaseId: $p, paymentReference: $p}) { id } }";
            for (name, account, paid) in [
                ("PENDING", "alice", false),
                ("UNPAID", "alice", false),
                ("PAID", "alice", true),
                ("BOB_PAID", "bob", true),
                ("TO_CANCEL", "alice", false),
                ("TO_FAIL", "alice", false),
            ] {
                let id = ok(app, &service, purchase, json!({ "a": account, "k": name }), &["purchaseCredits", "id"]).await;
                if paid {
                    ok(app, &service, confirm, json!({ "p": id }), &["confirmPurchase", "id"]).await;
                }
                ids.insert(name, id.as_str().unwrap().to_string());
            }
            let grant = "mutation { grantCredits(input: {accountId: \"alice\", amount: \"100\", class: PROMOTIONAL, idempotencyKey: \"LOT\"}) { lotId } }";
            let lot = ok(app, &admin, grant, json!({}), &["grantCredits", "lotId"]).await;
            ids.insert("LOT", lot.as_str().unwrap().to_string());
            // A lot of its own for `changeLotExpiry`, whose cases may expire it.
            let grant = "mutation { grantCredits(input: {accountId: \"alice\", amount: \"100\", class: PROMOTIONAL, idempotencyKey: \"LOT2\"}) { lotId } }";
            let lot = ok(app, &admin, grant, json!({}), &["grantCredits", "lotId"]).await;
            ids.insert("LOT2", lot.as_str().unwrap().to_string());
            let reserve = "mutation($k: String!) { reserveCredits(input: {accountId: \"alice\", amount: \"10\", feature: \"chat\", idempotencyKey: $k}) { reservationId } }";
            for name in ["RES", "RES2"] {
                let id = ok(app, &service, reserve, json!({ "k": name }), &["reserveCredits", "reservationId"]).await;
                ids.insert(name, id.as_str().unwrap().to_string());
            }
            ok(
                app,
                &admin,
                "mutation { createCoupon(input: {code: \"ADV-OK\", credits: \"5\", maxRedemptions: 1000}) { code } }",
                json!({}),
                &["createCoupon"],
            )
            .await;
            ok(
                app,
                &service,
                "mutation { startContainer(input: {accountId: \"alice\", containerId: \"c-1\", tier: \"micro\", idempotencyKey: \"c-1\"}) { container { state } } }",
                json!({}),
                &["startContainer"],
            )
            .await;
        }
        "carat" => {
            // alice subscribes (lucky credits); carol stays free, uses up her daily credits and
            // watches one verified ad (an ad reward).
            ok(
                app,
                &service,
                "mutation { changePlan(input: {accountId: \"alice\", plan: \"plus\", idempotencyKey: \"plus\"}) { grantedLotId } }",
                json!({}),
                &["changePlan"],
            )
            .await;
            app.create_account("carol").await;
            let spent = app.spend("carol", "100", "carol-daily").await;
            assert!(spent["errors"].is_null(), "{spent}");
            let query = format!("ad_unit=rewarded&user_id=carol&transaction_id=tx-ok&timestamp={}", app.clock.now().timestamp());
            let query = credits::ads::HmacSha256Verifier::new(crate::support::AD_SECRET).sign(&query);
            let status = app.client.get(format!("{}/callbacks/ads?{query}", app.address)).send().await.unwrap().status();
            assert_eq!(status, 200, "the ad view is verified");
        }
        "archipelag" => {
            for account in ["alice", "prov"] {
                ok(
                    app,
                    &service,
                    "mutation($a: ID!) { setIdentityVerified(accountId: $a, verified: true) { id } }",
                    json!({ "a": account }),
                    &["setIdentityVerified"],
                )
                .await;
            }
            ok(
                app,
                &service,
                "mutation { setAskingPrices(input: {accountId: \"prov\", hardwareClass: ENTRY, capacity: 50, defaultPrice: \"2\", prices: [{workload: \"llm-chat\", price: \"2\"}]}) { price } }",
                json!({}),
                &["setAskingPrices"],
            )
            .await;
            let submit = "mutation($k: String!) { submitJob(input: {accountId: \"alice\", workload: \"llm-chat\", inputs: [{input: \"fixture\"}], idempotencyKey: $k}) { jobId status } }";
            for name in ["JOB", "JOB2"] {
                let jobs = ok(app, &service, submit, json!({ "k": name }), &["submitJob"]).await;
                assert_eq!(jobs[0]["status"], json!("RUNNING"), "{jobs}");
                ids.insert(name, jobs[0]["jobId"].as_str().unwrap().to_string());
            }
        }
        _ => {}
    }
    Fixtures { ids }
}

#[derive(Default)]
struct Tally {
    /// Why the concurrent duplicates of the valid request were refused, if they were.
    duplicates_refused: Option<String>,
    cases: usize,
    refused: usize,
    accepted: usize,
}

impl Tally {
    fn count(&mut self, refused: bool) {
        self.cases += 1;
        if refused { self.refused += 1 } else { self.accepted += 1 }
    }
}

struct Run<'a> {
    app: &'a TestApp,
    dumper: Dumper,
    fixtures: Fixtures,
    counter: usize,
    /// Picks the transport of the next bad value.
    alternate: usize,
    /// One WebSocket per token (the token is given once, at `connection_init`), for the
    /// operation under test; closed after it.
    sockets: BTreeMap<Option<String>, Socket>,
}

impl Run<'_> {
    fn variables(&mut self, op: &Op) -> Value {
        self.counter += 1;
        let mut text = op.base.replace("$KEY", &format!("adv-{}", self.counter)).replace("$N", &self.counter.to_string());
        for (name, id) in &self.fixtures.ids {
            text = text.replace(&format!("\"${name}\""), &format!("\"{id}\""));
        }
        serde_json::from_str(&text).unwrap()
    }

    fn token(&self, who: Who) -> String {
        match who {
            Who::User(account) => self.app.user(account),
            Who::Service => self.app.service.clone(),
            Who::Admin => self.app.admin.clone(),
        }
    }

    async fn socket(&mut self, token: Option<&str>) -> &mut Socket {
        let key = token.map(str::to_string);
        if !self.sockets.contains_key(&key) {
            let socket = connect_as(&self.app.address, token).await;
            self.sockets.insert(key.clone(), socket);
        }
        self.sockets.get_mut(&key).unwrap()
    }

    /// One request over `transport`; a dropped connection or a 5xx is a finding.
    async fn send(&mut self, transport: Transport, token: Option<&str>, query: &str, variables: &Value) -> Value {
        match transport {
            Transport::Http => post(self.app, token, query, variables).await,
            Transport::WebSocket => {
                self.counter += 1;
                let id = format!("op-{}", self.counter);
                execute(self.socket(token).await, &id, query, variables.clone()).await
            }
        }
    }

    /// Sends one case and checks what it did; true when it was refused.
    async fn case(&mut self, op: &Op, transport: Transport, label: &str, token: Option<&str>, variables: &Value, expect: Expect) -> bool {
        let label = &format!("{label} ({transport:?})");
        let before = self.dumper.dump(&self.app.ledger.db).await;
        let r = self.send(transport, token, op.query, variables).await;
        let (shown, answer) = (short(variables), short(&r));
        let after = self.dumper.dump(&self.app.ledger.db).await;
        let codes = refusals(&r);
        if codes.is_empty() {
            assert_eq!(expect, Either, "{}: {label} was accepted: {shown} -> {answer}", op.name);
            self.app.assert_audit_clean().await;
            return false;
        }
        for code in &codes {
            assert!(DOCUMENTED.contains(&code.as_str()), "{}: {label} answered {code}: {shown} -> {answer}", op.name);
        }
        let changed: Vec<String> =
            changed_tables(&before, &after).into_iter().filter(|t| !MAY_CHANGE_ON_REFUSAL.contains(&t.as_str())).collect();
        if changed == ["idempotency_keys"] {
            // A business refusal (not an input error) is the key's outcome, kept so that every
            // replay refuses alike: the replay must answer the same and change nothing.
            let replay = self.send(transport, token, op.query, variables).await;
            assert_eq!(replay, r, "{}: {label}: the replay of a stored refusal answered differently", op.name);
            assert_eq!(changed_tables(&after, &self.dumper.dump(&self.app.ledger.db).await), Vec::<String>::new());
            return true;
        }
        assert!(changed.is_empty(), "{}: {label} was refused ({answer}) but changed {changed:?}: {shown}", op.name);
        true
    }

    async fn operation(&mut self, op: &Op) -> Tally {
        let mut tally = Tally::default();
        // Bad tokens, and right tokens of the wrong caller.
        let mut tokens = bad_tokens();
        match op.who {
            Who::User(_) => tokens.push(("another user", Some(self.app.user("bob")))),
            Who::Service => tokens.push(("a user", Some(self.app.user("alice")))),
            Who::Admin => {
                tokens.push(("a user", Some(self.app.user("alice"))));
                tokens.push(("the service", Some(self.app.service.clone())));
            }
        }
        for (label, token) in tokens {
            for transport in TRANSPORTS {
                let variables = self.variables(op);
                tally.count(self.case(op, transport, label, token.as_deref(), &variables, Refused).await);
            }
        }
        // Bad values, one field at a time on a request that would succeed.
        let mut cases: Vec<(String, &str, Value, Expect)> = Vec::new();
        for (path, kind) in op.fields {
            for (label, value, expect) in catalog(*kind) {
                cases.push((format!("{path} {label}"), path, value, expect));
            }
        }
        if matches!(op.who, Who::User(_)) {
            for (path, kind) in op.fields {
                if matches!(kind, Kind::Account | Kind::OptionalAccount) {
                    cases.push((format!("{path} another account's"), path, json!("bob"), Refused));
                }
            }
        }
        if op.name == "simulatePayment" {
            cases.push(("p another account's".into(), "p", json!(self.fixtures.ids["BOB_PAID"]), Refused));
        }
        if op.name == "refundPurchase" {
            cases.push(("input.purchaseId another account's".into(), "input.purchaseId", json!(self.fixtures.ids["BOB_PAID"]), Refused));
        }
        if op.name == "spendCreditsBatch" || op.name == "recordUsageBatch" {
            let one = self.variables(op)["input"]["items"][0].clone();
            cases.push(("input.items none".into(), "input.items", json!([]), Refused));
            cases.push(("input.items 101".into(), "input.items", json!(vec![one; 101]), Refused));
        }
        if op.name == "submitJob" {
            cases.push(("input.inputs none".into(), "input.inputs", json!([]), Refused));
            cases.push(("input.inputs 101".into(), "input.inputs", json!(vec![json!({ "input": "i" }); 101]), Refused));
            cases.push(("input.priority 101".into(), "input.priority", json!(101), Refused));
        }
        // The values that must be refused go first, then the concurrent duplicates of the valid
        // request, then the odd values that may be accepted: each of the latter may use up the
        // fixture (a reservation, a job, a verified ad) that the others need.
        let (refused, either): (Vec<_>, Vec<_>) = cases.into_iter().partition(|(_, _, _, expect)| *expect == Refused);
        let token = self.token(op.who);
        for (label, path, value, expect) in refused {
            for transport in value_transports(&mut self.alternate) {
                let variables = self.with(op, path, value.clone());
                tally.count(self.case(op, transport, &label, Some(&token), &variables, expect).await);
            }
        }
        // simulatePayment has no key: it is idempotent on its purchase.
        if op.fields.iter().any(|(_, kind)| *kind == Kind::Key) || op.name == "simulatePayment" {
            self.duplicates(op, &token, &mut tally).await;
        }
        for (label, path, value, expect) in either {
            for transport in value_transports(&mut self.alternate) {
                let variables = self.with(op, path, value.clone());
                tally.count(self.case(op, transport, &label, Some(&token), &variables, expect).await);
            }
        }
        self.app.assert_audit_clean().await;
        self.sockets.clear();
        tally
    }

    /// The valid request with one value replaced.
    fn with(&mut self, op: &Op, path: &str, value: Value) -> Value {
        let mut variables = self.variables(op);
        let value = match value {
            Value::String(s) => Value::String(s.replace("$N", &self.counter.to_string())),
            other => other,
        };
        set_path(&mut variables, path, value);
        variables
    }

    /// Concurrent duplicates of the valid request, three over HTTP and three over the WebSocket
    /// at once: one effect, one answer, and a replay over each transport changes nothing.
    async fn duplicates(&mut self, op: &Op, token: &str, tally: &mut Tally) {
        let variables = self.variables(op);
        let fresh = self.dumper.dump(&self.app.ledger.db).await;
        let app = self.app;
        let requests: Vec<(String, &str, &Value)> = (0..3).map(|i| (format!("dup-{}-{i}", self.counter), op.query, &variables)).collect();
        let socket = self.socket(Some(token)).await;
        let (mut answers, over_ws) = futures::join!(
            futures::future::join_all((0..3).map(|_| post(app, Some(token), op.query, &variables))),
            execute_all(socket, &requests)
        );
        answers.extend(over_ws);
        for answer in &answers[1..] {
            assert_eq!(answer, &answers[0], "{}: concurrent duplicates answered differently: {variables}", op.name);
        }
        let settled = self.dumper.dump(&self.app.ledger.db).await;
        // The dump sees changes: an accepted request changed something (which shows that an
        // unchanged dump after a refusal means something).
        if refusals(&answers[0]).is_empty() {
            assert_ne!(changed_tables(&fresh, &settled), Vec::<String>::new(), "{}: accepted but the dump did not change", op.name);
            self.app.assert_audit_clean().await;
        }
        for transport in TRANSPORTS {
            let replay = self.send(transport, Some(token), op.query, &variables).await;
            assert_eq!(replay, answers[0], "{}: a replay over {transport:?} answered differently", op.name);
        }
        assert_eq!(
            changed_tables(&settled, &self.dumper.dump(&self.app.ledger.db).await),
            Vec::<String>::new(),
            "{}: a replay changed",
            op.name
        );
        tally.cases += 8;
        match refusals(&answers[0]).first() {
            None => tally.accepted += 8,
            Some(code) => {
                tally.refused += 8;
                tally.duplicates_refused = Some(code.clone());
            }
        }
    }
}

/// The codes an answer refused with: the request's errors, and a bulk mutation's refused items
/// (`results[].error`, which answer in `data`: one item's refusal is not the request's).
fn refusals(r: &Value) -> Vec<String> {
    let request = r["errors"].as_array().into_iter().flatten().map(|e| e["extensions"]["code"].as_str().unwrap_or("(none)").to_string());
    let items = r["data"]
        .as_object()
        .into_iter()
        .flat_map(|data| data.values())
        .flat_map(|payload| payload["results"].as_array().into_iter().flatten())
        .filter(|result| result["ok"] == json!(false))
        .map(|result| result["error"]["code"].as_str().unwrap_or("(none)").to_string());
    request.chain(items).collect()
}

async fn every_mutation_survives_the_catalog(backend: Backend) {
    let mut total = Tally::default();
    for program in ["arkain", "carat", "archipelag", GIFTS_PROGRAM] {
        let app = TestApp::spawn_on(TestDb::new(backend).await, backend, program).await;
        let fixtures = fixtures(&app, program).await;
        let dumper = Dumper::new(&app.ledger.db).await;
        let mut run = Run { app: &app, dumper, fixtures, counter: 0, alternate: 0, sockets: BTreeMap::new() };
        for op in OPS.iter().filter(|op| op.program == program) {
            let tally = run.operation(op).await;
            let duplicates = tally.duplicates_refused.as_deref().map(|c| format!(" (duplicates refused alike: {c})")).unwrap_or_default();
            println!(
                "adversarial {backend:?} {:<20} {:>4} cases: {:>4} refused, {:>3} accepted{duplicates}",
                op.name, tally.cases, tally.refused, tally.accepted
            );
            total.cases += tally.cases;
            total.refused += tally.refused;
            total.accepted += tally.accepted;
        }
    }
    println!(
        "adversarial {backend:?} total: {} cases over {} operations, {} refused, {} accepted",
        total.cases,
        OPS.len(),
        total.refused,
        total.accepted
    );
}

/// Ad-view proofs, the other way credits enter from outside: forged, tampered, stale, future,
/// odd and replayed callbacks never reward anything, never answer 5xx, and change nothing but
/// the one verified view.
async fn ad_proofs_are_verified_and_replays_change_nothing(backend: Backend) {
    let app = TestApp::spawn_on(TestDb::new(backend).await, backend, "carat").await;
    app.create_account("carol").await;
    let dumper = Dumper::new(&app.ledger.db).await;
    let now = app.clock.now().timestamp();
    let network = credits::ads::HmacSha256Verifier::new(crate::support::AD_SECRET);
    let impostor = credits::ads::HmacSha256Verifier::new(b"not-the-network-secret");
    let query = |user: &str, tx: &str, t: i64| format!("ad_unit=rewarded&user_id={user}&transaction_id={tx}&timestamp={t}");
    let callback = |q: String| {
        let app = &app;
        async move { app.client.get(format!("{}/callbacks/ads?{q}", app.address)).send().await.unwrap().status().as_u16() }
    };
    let signed = network.sign(&query("carol", "tx-1", now));
    let cases: Vec<(&str, String)> = vec![
        ("unsigned", query("carol", "tx-1", now)),
        ("signed by another secret", impostor.sign(&query("carol", "tx-1", now))),
        ("account changed after signing", signed.replace("user_id=carol", "user_id=bob")),
        ("transaction changed after signing", signed.replace("tx-1", "tx-2")),
        ("signature cut short", signed[..signed.len() - 4].to_string()),
        ("stale", network.sign(&query("carol", "tx-1", now - 2 * 3600))),
        ("from the future", network.sign(&query("carol", "tx-1", now + 3600))),
        ("unknown account", network.sign(&query("nobody", "tx-1", now))),
        ("NUL in the transaction", network.sign(&query("carol", "tx%00", now))),
        ("empty transaction", network.sign(&query("carol", "", now))),
        ("timestamp out of range", network.sign(&query("carol", "tx-1", i64::MAX))),
        ("no parameters", String::new()),
        ("garbage", "%%%&&&===".to_string()),
    ];
    let mut tried = 0;
    for (label, q) in cases {
        let before = dumper.dump(&app.ledger.db).await;
        let status = callback(q).await;
        assert!((400..500).contains(&status), "{label}: {status}");
        assert_eq!(changed_tables(&before, &dumper.dump(&app.ledger.db).await), Vec::<String>::new(), "{label} changed something");
        tried += 1;
    }
    let before = dumper.dump(&app.ledger.db).await;
    assert_eq!(callback(signed.clone()).await, 200, "the real proof");
    assert_ne!(changed_tables(&before, &dumper.dump(&app.ledger.db).await), Vec::<String>::new(), "the real proof is recorded");
    let recorded = dumper.dump(&app.ledger.db).await;
    let replays = futures::future::join_all((0..5).map(|_| callback(signed.clone()))).await;
    assert_eq!(replays, vec![200; 5], "the network retries until it gets a 200");
    assert_eq!(changed_tables(&recorded, &dumper.dump(&app.ledger.db).await), Vec::<String>::new(), "replays change nothing");
    tried += 7;
    app.assert_audit_clean().await;
    println!("adversarial {backend:?} ad proofs: {tried} cases");
}

/// Stripe's events, the way paid credits enter from outside with Stripe: forged, tampered,
/// stale, unsigned and malformed posts to `/webhooks/stripe` answer 400 and change nothing; the
/// real event pays its purchase once, and Stripe's redeliveries (all at once) change nothing.
async fn stripe_events_are_verified_and_replays_change_nothing(backend: Backend) {
    const WHSEC: &str = "whsec_adversarial";
    let stripe = credits::stripe::StripeSettings {
        webhook_secrets: vec![WHSEC.to_string()],
        tolerance: credits::stripe::DEFAULT_TOLERANCE,
        client: None,
    };
    let app = TestApp::spawn_with_stripe(backend, crate::support::LEDGER_PROGRAM, stripe).await;
    app.create_account("carol").await;
    let made = app
        .gql(
            &app.service,
            "mutation { purchaseCredits(input: {accountId: \"carol\", credits: \"100\", idempotencyKey: \"p\"}) { id } }",
            json!({}),
        )
        .await;
    let id = made["data"]["purchaseCredits"]["id"].as_str().unwrap_or_else(|| panic!("{made}")).to_string();
    let dumper = Dumper::new(&app.ledger.db).await;
    let body = |purchase: &str, amount: i64| {
        json!({ "id": "evt_paid", "object": "event", "type": "payment_intent.succeeded", "data": { "object": {
            "id": "pi_1", "object": "payment_intent", "amount": amount, "amount_received": amount, "currency": "usd",
            "metadata": { "purchase_id": purchase } } } })
        .to_string()
    };
    let now = chrono::Utc::now().timestamp();
    let sign = |text: &str, secret: &str, at: i64| credits::stripe::signature::sign(text.as_bytes(), secret, at);
    let real = body(&id, 200);
    let post = |text: String, header: Option<String>| {
        let app = &app;
        async move {
            let mut request = app.client.post(format!("{}/webhooks/stripe", app.address)).body(text);
            if let Some(header) = header {
                request = request.header("Stripe-Signature", header);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("unsigned", real.clone(), None),
        ("signed by another secret", real.clone(), Some(sign(&real, "whsec_impostor", now))),
        ("purchase changed after signing", body("12345", 200), Some(sign(&real, WHSEC, now))),
        ("amount changed after signing", body(&id, 1), Some(sign(&real, WHSEC, now))),
        ("stale", real.clone(), Some(sign(&real, WHSEC, now - 3600))),
        ("from the future", real.clone(), Some(sign(&real, WHSEC, now + 3600))),
        ("signature cut short", real.clone(), Some(sign(&real, WHSEC, now)[..40].to_string())),
        ("only a v0", real.clone(), Some(sign(&real, WHSEC, now).replace("v1=", "v0="))),
        ("timestamp out of range", real.clone(), Some(format!("t=99999999999999999999,v1={}", "0".repeat(64)))),
        ("garbage header", real.clone(), Some("%%%,,,===".to_string())),
        ("signed, but not an event", "[1,2,3]".to_string(), Some(sign("[1,2,3]", WHSEC, now))),
        ("signed, but not JSON", "pay me".to_string(), Some(sign("pay me", WHSEC, now))),
    ];
    let mut tried = 0;
    for (label, text, header) in cases {
        let before = dumper.dump(&app.ledger.db).await;
        let status = post(text, header).await;
        assert_eq!(status, 400, "{label}");
        assert_eq!(changed_tables(&before, &dumper.dump(&app.ledger.db).await), Vec::<String>::new(), "{label} changed something");
        tried += 1;
    }
    assert_eq!(app.balance("carol").await, "0");
    assert_eq!(post(real.clone(), Some(sign(&real, WHSEC, now))).await, 200, "the real event");
    assert_eq!(app.balance("carol").await, "100");
    let recorded = dumper.dump(&app.ledger.db).await;
    let replays =
        futures::future::join_all((0..5).map(|_| post(real.clone(), Some(sign(&real, WHSEC, chrono::Utc::now().timestamp()))))).await;
    assert_eq!(replays, vec![200; 5], "Stripe redelivers until it gets a 2xx");
    assert_eq!(changed_tables(&recorded, &dumper.dump(&app.ledger.db).await), Vec::<String>::new(), "redeliveries change nothing");
    tried += 6;
    app.assert_audit_clean().await;
    println!("adversarial {backend:?} stripe events: {tried} cases");
}

/// Every mutation of the schema is in the suite, so a new one cannot slip by.
#[test]
fn the_suite_covers_every_mutation() {
    let names = crate::support::mutation_names();
    assert!(names.len() > 20, "{names:?}");
    let missing: Vec<&String> =
        names.iter().filter(|name| !OPS.iter().any(|op| op.name.split(' ').next() == Some(name.as_str()))).collect();
    assert!(missing.is_empty(), "no adversarial cases for {missing:?}");
}

on_both!(
    every_mutation_survives_the_catalog,
    ad_proofs_are_verified_and_replays_change_nothing,
    stripe_events_are_verified_and_replays_change_nothing
);
