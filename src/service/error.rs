use crate::ledger::claims::CouponRefusal;
use crate::ledger::refund::RefundRefusal;
use crate::ledger::{AccountStatus, Credits};
use serde::{Deserialize, Serialize};

/// What a use case can refuse or fail with. The GraphQL layer maps each variant to one stable
/// code, in one place (`graphql/error.rs`).
///
/// A business refusal is `Refused(Refusal)`: the same value whether it was just decided, kept
/// under an idempotency key, or replayed from one, so there is nothing to map between the two.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
    /// A business refusal (insufficient credits, a status that does not allow the operation, an
    /// exhausted coupon, ...): the outcome of a keyed operation, so kept under its key.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("{0}")]
    TooManyAttempts(String),
    #[error("{0}")]
    FeatureDisabled(String),
    /// The account's credits would pass `ledger::amount::MAX_BALANCE_CREDITS`.
    #[error("{0}")]
    BalanceLimitExceeded(String),
    #[error("the ledger is busy; try again")]
    Busy,
    /// A service the operation needs (the payment provider) could not be reached or refused;
    /// what was done is kept, and the same call with the same key finishes it.
    #[error("{0}")]
    Unavailable(String),
    /// The database could not be reached, or could not write (`store::unreachable`): nothing
    /// about the request is wrong, and the same call later (with the same key) finishes it. The
    /// database's error is kept as the source, for the log and for the jobs' failure kinds.
    #[error("{}", database_message(*why))]
    DatabaseUnavailable {
        why: crate::store::Unreachable,
        #[source]
        cause: sea_orm::DbErr,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Business refusals: the outcomes of an operation that are not a success but are its answer,
/// so a keyed operation keeps them under its key and every replay refuses alike. Refusals made
/// before the key is read (an unverified identity, an ineligible tier) use the same type and
/// are simply never stored.
///
/// The serde form is what `idempotency_keys.outcome` holds (`{"InsufficientCredits":{...}}`,
/// `"IdentityNotVerified"`): renaming a variant or a field, or changing how a field
/// serializes, breaks the replay of outcomes already stored. `tests` below pins it.
/// The messages are what clients read in `errors[].message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// `feature` is named when credits scoped to other features were left out: `available`
    /// is then what that feature could take. Left out of the stored form when none, so outcomes
    /// stored before scoped credits replay alike.
    #[error("insufficient credits: {requested} requested, {available} available{}", for_feature(feature.as_deref()))]
    InsufficientCredits {
        requested: Credits,
        available: Credits,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feature: Option<String>,
    },
    /// The account's status does not allow the operation; stored as the status's text.
    #[error("account is {status}: {}", refused_because(*status))]
    AccountNotActive { status: AccountStatus },
    #[error("{what}")]
    AlreadyClaimed { what: String },
    #[error("{}", coupon_message(*.0))]
    Coupon(CouponRefusal),
    #[error("refund not allowed: {0}")]
    Refund(RefundRefusal),
    #[error("{why}")]
    NotEligible { why: String },
    #[error("{what}")]
    LimitReached { what: String },
    /// The reservation was already captured, released or expired (its stored status).
    #[error("the reservation is already {status}")]
    ReservationNotHeld { status: String },
    /// The thing is not in a state that allows this (a container already running).
    #[error("{what}")]
    InvalidState { what: String },
    /// The market's submission once kept this under its key; the check now runs before the key
    /// (`IdentityRequired`), so nothing builds it, but stored outcomes still replay it.
    #[error("spending on the market needs a verified identity")]
    IdentityNotVerified,
    /// A verified identity is needed first (to spend on a program that says so, to submit to
    /// the market, to register as a provider): checked before the key, so never stored.
    #[error("{why}")]
    IdentityRequired { why: String },
    /// A spend limit the account's user set (`setSpendLimits`) would be passed: `period` is
    /// "DAY", "MONTH" or "CHARGE" (the maximum per single charge, which never resets); `feature`
    /// is none for a limit on every feature; `used` is what the period had counted before this
    /// charge. Stored under the key and replayed like `InsufficientCredits`.
    #[error("{}", spend_limit_message(feature.as_deref(), period, *limit, *used, *requested, resets_at.as_ref()))]
    SpendLimitReached {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feature: Option<String>,
        period: String,
        limit: Credits,
        used: Credits,
        requested: Credits,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resets_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// A gift larger than the sender's giftable credits: only paid, unscoped credits spendable
    /// now can be gifted (`ledger::gift`). Answered as INSUFFICIENT_CREDITS.
    #[error("insufficient credits to gift: {requested} requested, {giftable} available (only paid credits can be gifted)")]
    GiftShort { requested: Credits, giftable: Credits },
}

impl Refusal {
    pub fn not_eligible(why: impl Into<String>) -> Refusal {
        Refusal::NotEligible { why: why.into() }
    }

    /// The refusal of a draw for `feature` (none: not a use) that the account's lots cannot
    /// pay: it names the feature when credits scoped to others were there but not for it.
    pub fn short(short: crate::ledger::Insufficient, feature: Option<&str>) -> Refusal {
        Refusal::InsufficientCredits {
            requested: short.requested,
            available: short.available,
            feature: feature.filter(|_| !short.elsewhere.is_zero()).map(str::to_string),
        }
    }

    pub fn identity_required(why: impl Into<String>) -> Refusal {
        Refusal::IdentityRequired { why: why.into() }
    }
}

/// What a request is told when the database cannot be reached or written: whether a write
/// whose commit was cut off had landed is not known, so the answer says how to find out.
fn database_message(why: crate::store::Unreachable) -> &'static str {
    match why {
        crate::store::Unreachable::Down => {
            "the database cannot be reached right now; retry later (a mutation with the same idempotency key: it may have completed)"
        }
        crate::store::Unreachable::Full => {
            "the database cannot write (its disk is full or failing); nothing was changed by this request, retry once an operator has made room"
        }
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(err: sea_orm::DbErr) -> Self {
        match crate::store::unreachable(&err) {
            Some(why) => {
                // The operator's signal: the request only learns that it may retry.
                tracing::warn!(error = %err, "the database is unavailable");
                ServiceError::DatabaseUnavailable { why, cause: err }
            }
            None => {
                if let Some(hint) = crate::db::hint(&err) {
                    tracing::error!(error = %err, hint, "the database connection is not usable as deployed");
                }
                ServiceError::Internal(anyhow::Error::new(err))
            }
        }
    }
}

impl ServiceError {
    pub fn bad_input(message: impl Into<String>) -> ServiceError {
        ServiceError::BadInput(message.into())
    }

    /// The business refusal this error is, if it is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ServiceError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }

    /// An internal error that is in fact the database being unreachable (one that reached here
    /// wrapped in `anyhow` rather than converted by `From<DbErr>`) becomes `Unavailable`; the
    /// GraphQL layer passes every error through this before choosing its code.
    pub fn settled(self) -> ServiceError {
        match self.db_err().and_then(|cause| Some((crate::store::unreachable(cause)?, cause.clone()))) {
            Some((why, cause)) => ServiceError::DatabaseUnavailable { why, cause },
            None => self,
        }
    }

    /// The database error behind an internal error, if any.
    pub fn db_err(&self) -> Option<&sea_orm::DbErr> {
        match self {
            ServiceError::Internal(e) => e.downcast_ref::<sea_orm::DbErr>(),
            _ => None,
        }
    }
}

/// Why an account's status refuses an operation.
pub fn refused_because(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "active accounts are not refused",
        AccountStatus::Inactive => "an inactive account can be charged only for storage",
        AccountStatus::Suspended => "a suspended account can only be read",
    }
}

fn for_feature(feature: Option<&str>) -> String {
    feature.map(|f| format!(" for feature {f:?} (credits scoped to other features cannot pay for it)")).unwrap_or_default()
}

fn spend_limit_message(
    feature: Option<&str>,
    period: &str,
    limit: Credits,
    used: Credits,
    requested: Credits,
    resets_at: Option<&chrono::DateTime<chrono::Utc>>,
) -> String {
    let scope = feature.map(|f| format!(" for feature {f:?}")).unwrap_or_default();
    match (period, resets_at) {
        ("CHARGE", _) | (_, None) => format!("spend limit reached: {requested} requested, over the maximum of {limit} per charge{scope}"),
        (period, Some(at)) => format!(
            "spend limit reached: {requested} requested, {used} of the {} limit of {limit}{scope} used; it resets at {}",
            period.to_ascii_lowercase().replace("day", "daily").replace("month", "monthly"),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    }
}

fn coupon_message(refusal: CouponRefusal) -> &'static str {
    match refusal {
        CouponRefusal::NotFound => "no such coupon",
        CouponRefusal::NotYetValid => "this coupon cannot be redeemed yet",
        CouponRefusal::Expired => "this coupon has expired",
        CouponRefusal::Exhausted => "this coupon has been fully redeemed",
        CouponRefusal::AlreadyRedeemed => "this account already redeemed this coupon",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcomes as `idempotency_keys.outcome` held them before `Refusal` and `ServiceError`
    /// became one enum (credits as micro-credits), with the message each replayed with then;
    /// the last one is new and never stored, here for its message. The second is the form a
    /// refusal for a feature takes since scoped credits.
    const STORED: [(&str, &str); 16] = [
        (r#"{"InsufficientCredits":{"requested":2500000,"available":1000000}}"#, "insufficient credits: 2.5 requested, 1 available"),
        (
            r#"{"InsufficientCredits":{"requested":2500000,"available":1000000,"feature":"ai"}}"#,
            "insufficient credits: 2.5 requested, 1 available for feature \"ai\" (credits scoped to other features cannot pay for it)",
        ),
        (r#"{"AccountNotActive":{"status":"suspended"}}"#, "account is suspended: a suspended account can only be read"),
        (r#"{"AccountNotActive":{"status":"inactive"}}"#, "account is inactive: an inactive account can be charged only for storage"),
        (r#"{"AlreadyClaimed":{"what":"already checked in on 2026-01-02"}}"#, "already checked in on 2026-01-02"),
        (r#"{"Coupon":"Exhausted"}"#, "this coupon has been fully redeemed"),
        (r#"{"Refund":"WindowClosed"}"#, "refund not allowed: the refund window has closed"),
        (r#"{"NotEligible":{"why":"not a free plan"}}"#, "not a free plan"),
        (r#"{"LimitReached":{"what":"today's 3 ad rewards are claimed"}}"#, "today's 3 ad rewards are claimed"),
        (r#"{"ReservationNotHeld":{"status":"captured"}}"#, "the reservation is already captured"),
        (r#"{"InvalidState":{"what":"container 7 is not running"}}"#, "container 7 is not running"),
        (r#""IdentityNotVerified""#, "spending on the market needs a verified identity"),
        (r#"{"IdentityRequired":{"why":"a provider's identity must be verified first"}}"#, "a provider's identity must be verified first"),
        (
            r#"{"SpendLimitReached":{"feature":"ai","period":"DAY","limit":100000000,"used":95000000,"requested":10000000,"resets_at":"2026-12-04T00:00:00Z"}}"#,
            "spend limit reached: 10 requested, 95 of the daily limit of 100 for feature \"ai\" used; it resets at 2026-12-04T00:00:00Z",
        ),
        (
            r#"{"SpendLimitReached":{"period":"CHARGE","limit":5000000,"used":0,"requested":6000000}}"#,
            "spend limit reached: 6 requested, over the maximum of 5 per charge",
        ),
        (
            r#"{"GiftShort":{"requested":50000000,"giftable":20000000}}"#,
            "insufficient credits to gift: 50 requested, 20 available (only paid credits can be gifted)",
        ),
    ];

    #[test]
    fn stored_refusals_read_back_byte_for_byte_with_their_messages() {
        for (stored, message) in STORED {
            let refusal: Refusal = serde_json::from_str(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
            assert_eq!(serde_json::to_string(&refusal).unwrap(), stored, "the stored form is kept");
            assert_eq!(ServiceError::from(refusal).to_string(), message, "{stored}");
        }
    }

    #[test]
    fn every_coupon_refusal_has_its_message() {
        let messages = [
            (CouponRefusal::NotFound, "no such coupon"),
            (CouponRefusal::NotYetValid, "this coupon cannot be redeemed yet"),
            (CouponRefusal::Expired, "this coupon has expired"),
            (CouponRefusal::Exhausted, "this coupon has been fully redeemed"),
            (CouponRefusal::AlreadyRedeemed, "this account already redeemed this coupon"),
        ];
        for (refusal, message) in messages {
            assert_eq!(Refusal::Coupon(refusal).to_string(), message);
        }
    }
}
