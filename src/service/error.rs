use crate::ledger::claims::CouponRefusal;
use crate::ledger::refund::RefundRefusal;
use crate::ledger::{AccountStatus, Credits};

/// What a use case can refuse or fail with. The GraphQL layer maps each variant to one stable
/// code, in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("insufficient credits: {requested} requested, {available} available")]
    InsufficientCredits { requested: Credits, available: Credits },
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("account is {status}: {message}")]
    AccountNotActive { status: AccountStatus, message: String },
    #[error("{0}")]
    AlreadyClaimed(String),
    #[error("{}", coupon_message(*.0))]
    Coupon(CouponRefusal),
    #[error("refund not allowed: {0}")]
    RefundNotAllowed(RefundRefusal),
    #[error("{0}")]
    TooManyAttempts(String),
    #[error("{0}")]
    FeatureDisabled(String),
    #[error("{0}")]
    NotEligible(String),
    #[error("{0}")]
    LimitReached(String),
    /// The market needs a verified identity.
    #[error("{0}")]
    IdentityNotVerified(String),
    /// The thing is not in a state that allows this (a container already running).
    #[error("{0}")]
    InvalidState(String),
    /// The reservation was already captured, released or expired.
    #[error("{0}")]
    ReservationNotHeld(String),
    /// The account's credits would pass `ledger::amount::MAX_BALANCE_CREDITS`.
    #[error("{0}")]
    BalanceLimitExceeded(String),
    #[error("the ledger is busy; try again")]
    Busy,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(err: sea_orm::DbErr) -> Self {
        ServiceError::Internal(anyhow::Error::new(err))
    }
}

impl ServiceError {
    pub fn bad_input(message: impl Into<String>) -> ServiceError {
        ServiceError::BadInput(message.into())
    }

    /// The database error behind an internal error, if any.
    pub fn db_err(&self) -> Option<&sea_orm::DbErr> {
        match self {
            ServiceError::Internal(e) => e.downcast_ref::<sea_orm::DbErr>(),
            _ => None,
        }
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
