//! The one place where errors become GraphQL errors with a stable `extensions.code`.

use crate::auth::AuthError;
use crate::ledger::claims::CouponRefusal;
use crate::service::{Refusal, ServiceError};
use async_graphql::ErrorExtensions;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use std::sync::Arc;

/// The documented, stable codes (see README "Errors").
pub mod code {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const INSUFFICIENT_CREDITS: &str = "INSUFFICIENT_CREDITS";
    pub const IDEMPOTENCY_CONFLICT: &str = "IDEMPOTENCY_CONFLICT";
    pub const ACCOUNT_NOT_ACTIVE: &str = "ACCOUNT_NOT_ACTIVE";
    pub const ALREADY_CLAIMED: &str = "ALREADY_CLAIMED";
    pub const COUPON_NOT_FOUND: &str = "COUPON_NOT_FOUND";
    pub const COUPON_NOT_YET_VALID: &str = "COUPON_NOT_YET_VALID";
    pub const COUPON_EXPIRED: &str = "COUPON_EXPIRED";
    pub const COUPON_EXHAUSTED: &str = "COUPON_EXHAUSTED";
    pub const COUPON_ALREADY_REDEEMED: &str = "COUPON_ALREADY_REDEEMED";
    pub const REFUND_NOT_ALLOWED: &str = "REFUND_NOT_ALLOWED";
    pub const TOO_MANY_ATTEMPTS: &str = "TOO_MANY_ATTEMPTS";
    pub const FEATURE_DISABLED: &str = "FEATURE_DISABLED";
    pub const NOT_ELIGIBLE: &str = "NOT_ELIGIBLE";
    pub const DAILY_LIMIT_REACHED: &str = "DAILY_LIMIT_REACHED";
    pub const RESERVATION_NOT_HELD: &str = "RESERVATION_NOT_HELD";
    pub const INVALID_STATE: &str = "INVALID_STATE";
    pub const IDENTITY_NOT_VERIFIED: &str = "IDENTITY_NOT_VERIFIED";
    pub const BALANCE_LIMIT_EXCEEDED: &str = "BALANCE_LIMIT_EXCEEDED";
    /// A spend limit the account's user set would be passed (`setSpendLimits`).
    pub const SPEND_LIMIT_REACHED: &str = "SPEND_LIMIT_REACHED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const TIMEOUT: &str = "TIMEOUT";
    /// A cap on things open at once was reached (operations on one WebSocket, subscriptions on
    /// one account, WebSockets from one address): close one, then retry.
    pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";
    /// A hash-only request (`extensions.persistedQuery`) whose hash the server does not know:
    /// Apollo clients then send the full query with its hash.
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// With `persisted_only` on, a document the operator (or the server) did not register.
    pub const PERSISTED_QUERY_NOT_ALLOWED: &str = "PERSISTED_QUERY_NOT_ALLOWED";
    pub const INTERNAL: &str = "INTERNAL_SERVER_ERROR";
}

/// Every resolver returns this. It deliberately has no `Display`: async-graphql converts any
/// `Display` type into an error without a code, so a `?` on a foreign error would slip through
/// uncoded. Without `Display`, the only way out is the mapping below.
/// `Clone` is required of resolver errors; the service error is shared, not copied.
#[derive(Debug, Clone)]
pub enum ApiError {
    Unauthenticated(AuthError),
    Forbidden(String),
    /// A cap on things open at once (`code::LIMIT_EXCEEDED`).
    LimitExceeded(String),
    /// A hash-only request for a hash the server does not know (or, with `persisted_only` on,
    /// that only a client taught it).
    PersistedQueryNotFound,
    /// With `persisted_only` on, a document that is not on the allow-list.
    PersistedQueryNotAllowed,
    Service(Arc<ServiceError>),
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        ApiError::Service(Arc::new(err.settled()))
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => code::UNAUTHENTICATED,
            ApiError::Forbidden(_) => code::FORBIDDEN,
            ApiError::LimitExceeded(_) => code::LIMIT_EXCEEDED,
            ApiError::PersistedQueryNotFound => code::PERSISTED_QUERY_NOT_FOUND,
            ApiError::PersistedQueryNotAllowed => code::PERSISTED_QUERY_NOT_ALLOWED,
            ApiError::Service(e) => match &**e {
                ServiceError::BadInput(_) => code::BAD_USER_INPUT,
                ServiceError::NotFound(_) => code::NOT_FOUND,
                // A business refusal: one code per kind, one per coupon refusal.
                ServiceError::Refused(refusal) => match refusal {
                    Refusal::InsufficientCredits { .. } | Refusal::GiftShort { .. } => code::INSUFFICIENT_CREDITS,
                    Refusal::AccountNotActive { .. } => code::ACCOUNT_NOT_ACTIVE,
                    Refusal::AlreadyClaimed { .. } => code::ALREADY_CLAIMED,
                    Refusal::Coupon(refusal) => match refusal {
                        CouponRefusal::NotFound => code::COUPON_NOT_FOUND,
                        CouponRefusal::NotYetValid => code::COUPON_NOT_YET_VALID,
                        CouponRefusal::Expired => code::COUPON_EXPIRED,
                        CouponRefusal::Exhausted => code::COUPON_EXHAUSTED,
                        CouponRefusal::AlreadyRedeemed => code::COUPON_ALREADY_REDEEMED,
                    },
                    Refusal::Refund(_) => code::REFUND_NOT_ALLOWED,
                    Refusal::NotEligible { .. } => code::NOT_ELIGIBLE,
                    Refusal::LimitReached { .. } => code::DAILY_LIMIT_REACHED,
                    Refusal::ReservationNotHeld { .. } => code::RESERVATION_NOT_HELD,
                    Refusal::InvalidState { .. } => code::INVALID_STATE,
                    Refusal::IdentityNotVerified | Refusal::IdentityRequired { .. } => code::IDENTITY_NOT_VERIFIED,
                    Refusal::SpendLimitReached { .. } => code::SPEND_LIMIT_REACHED,
                },
                ServiceError::IdempotencyConflict(_) => code::IDEMPOTENCY_CONFLICT,
                ServiceError::TooManyAttempts(_) => code::TOO_MANY_ATTEMPTS,
                ServiceError::FeatureDisabled(_) => code::FEATURE_DISABLED,
                ServiceError::BalanceLimitExceeded(_) => code::BALANCE_LIMIT_EXCEEDED,
                ServiceError::Busy | ServiceError::Unavailable(_) | ServiceError::DatabaseUnavailable { .. } => code::UNAVAILABLE,
                ServiceError::Internal(_) => code::INTERNAL,
            },
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        let details = err.details();
        let gql = async_graphql::Error::new(err.message());
        gql.extend_with(|_, ext| {
            ext.set("code", code);
            for (name, value) in &details {
                ext.set(*name, value.clone());
            }
        })
    }
}

impl ApiError {
    /// What the client is told. Internal details are logged in full and never returned.
    pub fn message(&self) -> String {
        match self {
            ApiError::Service(e) if matches!(&**e, ServiceError::Internal(_)) => {
                if let ServiceError::Internal(cause) = &**e {
                    tracing::error!(error = format!("{cause:#}"), "internal error");
                }
                "internal error".to_string()
            }
            ApiError::Unauthenticated(e) => e.to_string(),
            ApiError::Forbidden(message) | ApiError::LimitExceeded(message) => message.clone(),
            // Apollo clients match this exact message as well as the code.
            ApiError::PersistedQueryNotFound => "PersistedQueryNotFound".to_string(),
            ApiError::PersistedQueryNotAllowed => {
                "this server runs only registered documents (persisted_only): register it with `credits persisted add`".to_string()
            }
            ApiError::Service(e) => e.to_string(),
        }
    }

    /// The figures a refusal carries besides its code (an error's `extensions`, a batch item's
    /// `error.details`): credits as exact strings, instants as RFC 3339.
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let ApiError::Service(e) = self else { return Vec::new() };
        let ServiceError::Refused(refusal) = &**e else { return Vec::new() };
        let mut details = Vec::new();
        match refusal {
            Refusal::InsufficientCredits { requested, available, feature } => {
                details.push(("requested", requested.to_string()));
                details.push(("available", available.to_string()));
                details.extend(feature.clone().map(|f| ("feature", f)));
            }
            Refusal::SpendLimitReached { feature, period, limit, used, requested, resets_at } => {
                // The per-charge maximum never resets, so it has no resetsAt.
                details.push(("period", period.clone()));
                details.push(("limit", limit.to_string()));
                details.push(("used", used.to_string()));
                details.push(("requested", requested.to_string()));
                details.extend(feature.clone().map(|f| ("feature", f)));
                details.extend(resets_at.map(|at| ("resetsAt", at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))));
            }
            Refusal::GiftShort { requested, giftable } => {
                details.push(("requested", requested.to_string()));
                details.push(("available", giftable.to_string()));
            }
            _ => {}
        }
        details
    }
}

/// Every error a client sees carries a code: the library's own parse, validation, depth and
/// complexity errors come without one and get `BAD_USER_INPUT`. An extension, so that one place
/// covers every transport: an HTTP request passes through `request`, every operation sent over
/// the WebSocket (queries and mutations too) through `subscribe`. Registered first, so it sees
/// what every other extension answers.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> async_graphql::Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

/// `BAD_USER_INPUT` on each error that has no code: an error of ours always has one, so one
/// without is the library refusing the request.
pub fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", code::BAD_USER_INPUT);
        }
    }
    response
}

impl ApiError {
    /// The error as a request-level error (no location, no path), for refusals made before the
    /// document is parsed.
    pub fn into_request_error(self) -> async_graphql::ServerError {
        let error: async_graphql::Error = self.into();
        let mut server_error = async_graphql::ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

/// A server error with its code, for refusals made outside a resolver.
pub fn server_error(message: impl Into<String>, code: &'static str) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Credits;

    fn code_of(err: ApiError) -> String {
        let gql: async_graphql::Error = err.into();
        match gql.extensions.and_then(|e| e.get("code").cloned()) {
            Some(async_graphql::Value::String(code)) => code,
            other => panic!("no code: {other:?}"),
        }
    }

    fn refused(refusal: Refusal) -> ApiError {
        ServiceError::Refused(refusal).into()
    }

    #[test]
    fn every_error_maps_to_its_code() {
        assert_eq!(code_of(ApiError::Unauthenticated(AuthError::Missing)), "UNAUTHENTICATED");
        assert_eq!(code_of(ApiError::Forbidden("no".into())), "FORBIDDEN");
        assert_eq!(code_of(ApiError::LimitExceeded("no".into())), "LIMIT_EXCEEDED");
        assert_eq!(code_of(ApiError::PersistedQueryNotFound), "PERSISTED_QUERY_NOT_FOUND");
        assert_eq!(code_of(ApiError::PersistedQueryNotAllowed), "PERSISTED_QUERY_NOT_ALLOWED");
        assert_eq!(code_of(ServiceError::bad_input("x").into()), "BAD_USER_INPUT");
        assert_eq!(code_of(ServiceError::NotFound("x".into()).into()), "NOT_FOUND");
        assert_eq!(code_of(ServiceError::IdempotencyConflict("x".into()).into()), "IDEMPOTENCY_CONFLICT");
        assert_eq!(code_of(ServiceError::Busy.into()), "UNAVAILABLE");
        assert_eq!(code_of(ServiceError::TooManyAttempts("x".into()).into()), "TOO_MANY_ATTEMPTS");
        assert_eq!(code_of(ServiceError::FeatureDisabled("x".into()).into()), "FEATURE_DISABLED");
        assert_eq!(code_of(ServiceError::BalanceLimitExceeded("x".into()).into()), "BALANCE_LIMIT_EXCEEDED");
        assert_eq!(code_of(ServiceError::Internal(anyhow::anyhow!("secret detail")).into()), "INTERNAL_SERVER_ERROR");
    }

    #[test]
    fn every_refusal_maps_to_its_code() {
        let x = || "x".to_string();
        let cases = [
            (
                Refusal::InsufficientCredits { requested: Credits::from_whole(2), available: Credits::ZERO, feature: None },
                "INSUFFICIENT_CREDITS",
            ),
            (Refusal::AccountNotActive { status: crate::ledger::AccountStatus::Suspended }, "ACCOUNT_NOT_ACTIVE"),
            (Refusal::AlreadyClaimed { what: x() }, "ALREADY_CLAIMED"),
            (Refusal::Coupon(CouponRefusal::NotFound), "COUPON_NOT_FOUND"),
            (Refusal::Coupon(CouponRefusal::NotYetValid), "COUPON_NOT_YET_VALID"),
            (Refusal::Coupon(CouponRefusal::Expired), "COUPON_EXPIRED"),
            (Refusal::Coupon(CouponRefusal::Exhausted), "COUPON_EXHAUSTED"),
            (Refusal::Coupon(CouponRefusal::AlreadyRedeemed), "COUPON_ALREADY_REDEEMED"),
            (Refusal::Refund(crate::ledger::refund::RefundRefusal::WindowClosed), "REFUND_NOT_ALLOWED"),
            (Refusal::NotEligible { why: x() }, "NOT_ELIGIBLE"),
            (Refusal::LimitReached { what: x() }, "DAILY_LIMIT_REACHED"),
            (Refusal::ReservationNotHeld { status: x() }, "RESERVATION_NOT_HELD"),
            (Refusal::InvalidState { what: x() }, "INVALID_STATE"),
            (Refusal::IdentityNotVerified, "IDENTITY_NOT_VERIFIED"),
            (Refusal::GiftShort { requested: Credits::from_whole(2), giftable: Credits::ZERO }, "INSUFFICIENT_CREDITS"),
            (Refusal::IdentityRequired { why: x() }, "IDENTITY_NOT_VERIFIED"),
            (
                Refusal::SpendLimitReached {
                    feature: None,
                    period: "CHARGE".into(),
                    limit: Credits::from_whole(1),
                    used: Credits::ZERO,
                    requested: Credits::from_whole(2),
                    resets_at: None,
                },
                "SPEND_LIMIT_REACHED",
            ),
        ];
        for (refusal, code) in cases {
            assert_eq!(code_of(refused(refusal.clone())), code, "{refusal:?}");
        }
    }

    /// `INSUFFICIENT_CREDITS` says how much was asked and how much there was; no other code
    /// carries more than its code.
    #[test]
    fn insufficient_credits_carries_the_amounts() {
        let short = Refusal::InsufficientCredits { requested: Credits::from_whole(2), available: Credits::ZERO, feature: None };
        let gql: async_graphql::Error = refused(short).into();
        let extensions = gql.extensions.expect("extensions");
        assert_eq!(extensions.get("requested"), Some(&async_graphql::Value::from("2")));
        assert_eq!(extensions.get("available"), Some(&async_graphql::Value::from("0")));
        let gql: async_graphql::Error = refused(Refusal::AccountNotActive { status: crate::ledger::AccountStatus::Inactive }).into();
        let extensions = gql.extensions.expect("extensions");
        assert_eq!((extensions.get("code").is_some(), extensions.get("requested"), extensions.get("status")), (true, None, None));
        assert_eq!(gql.message, "account is inactive: an inactive account can be charged only for storage");
    }

    #[test]
    fn a_spend_limit_refusal_carries_the_limit_and_when_it_resets() {
        use chrono::TimeZone;
        let reached = Refusal::SpendLimitReached {
            feature: Some("ai".into()),
            period: "DAY".into(),
            limit: Credits::from_whole(100),
            used: Credits::from_micros(99_500_000),
            requested: Credits::from_whole(1),
            resets_at: Some(chrono::Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap()),
        };
        let extensions = async_graphql::Error::from(refused(reached)).extensions.expect("extensions");
        let get = |k: &str| extensions.get(k).cloned();
        assert_eq!(get("code"), Some(async_graphql::Value::from("SPEND_LIMIT_REACHED")));
        assert_eq!(get("feature"), Some(async_graphql::Value::from("ai")));
        assert_eq!(get("period"), Some(async_graphql::Value::from("DAY")));
        assert_eq!(get("limit"), Some(async_graphql::Value::from("100")));
        assert_eq!(get("used"), Some(async_graphql::Value::from("99.5")));
        assert_eq!(get("requested"), Some(async_graphql::Value::from("1")));
        assert_eq!(get("resetsAt"), Some(async_graphql::Value::from("2026-12-04T00:00:00Z")));
    }

    #[test]
    fn errors_without_a_code_get_one_and_codes_are_kept() {
        let uncoded = async_graphql::ServerError::new("Unknown field", None);
        let response = with_codes(async_graphql::Response::from_errors(vec![uncoded, server_error("slow", code::TIMEOUT)]));
        let codes: Vec<_> = response.errors.iter().map(|e| e.extensions.as_ref().and_then(|x| x.get("code")).cloned()).collect();
        assert_eq!(codes, vec![Some(async_graphql::Value::from("BAD_USER_INPUT")), Some(async_graphql::Value::from("TIMEOUT"))]);
    }

    /// Apollo clients retry with the full query on this code or on this exact message.
    #[test]
    fn an_unknown_persisted_query_speaks_apollos_words() {
        let error = ApiError::PersistedQueryNotFound.into_request_error();
        assert_eq!(error.message, "PersistedQueryNotFound");
        assert!(error.locations.is_empty());
        assert_eq!(error.extensions.and_then(|e| e.get("code").cloned()), Some(async_graphql::Value::from("PERSISTED_QUERY_NOT_FOUND")));
    }

    #[test]
    fn internal_details_are_not_returned() {
        let gql: async_graphql::Error = ApiError::from(ServiceError::Internal(anyhow::anyhow!("password=hunter2"))).into();
        assert_eq!(gql.message, "internal error");
    }
}
