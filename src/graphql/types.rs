//! GraphQL output and enum types, built from domain and stored types. Entities never derive
//! GraphQL traits: the public contract must not move when a table does.

use crate::graphql::amount::{CreditAmount, SignedCreditAmount};
use crate::ledger::{self, Credits, Validity};
use crate::service::ServiceError;
use crate::store::journal::EntryKind as StoreKind;

pub fn credits(c: Credits) -> CreditAmount {
    CreditAmount(c)
}

/// A signed amount of micro-credits: a change to an account's credits.
pub fn signed(micros: i64) -> SignedCreditAmount {
    SignedCreditAmount::from_micros(micros)
}

macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident <=> $domain:path { $($(#[$variant_meta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                use $domain as D;
                match value { $(D::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                use $domain as D;
                match value { $($name::$variant => D::$variant),+ }
            }
        }
    };
}
pub(crate) use mirror_enum;

mirror_enum!(
    /// What a lot is worth to its holder: decides refunds and the order of consumption.
    LotClass <=> ledger::LotClass { Paid, Promotional, Free }
);
mirror_enum!(
    /// Where a lot came from.
    LotSource <=> ledger::LotSource {
        Purchase, Subscription, MonthlyPlan, CheckIn, Referral, SignUp, Coupon, Feedback, Event,
        FirstPurchaseBonus, DailyFree, AdReward, Lucky, ProviderEarnings, Adjustment,
    }
);
mirror_enum!(
    /// Active accounts do everything; inactive ones can be charged only for storage; suspended
    /// ones can only be read.
    AccountStatus <=> ledger::AccountStatus { Active, Inactive, Suspended }
);
mirror_enum!(
    /// What a journal entry records.
    EntryKind <=> StoreKind { Grant, Spend, Expire, Refund, Revoke, Adjust, Transfer, Hold, Release }
);
mirror_enum!(
    /// Where a reservation stands: held until captured, released, or past its deadline.
    ReservationStatus <=> crate::ledger::reservation::ReservationStatus { Held, Captured, Released, Expired }
);

/// A stored value the code does not know: the database was changed behind the service's back.
pub(crate) fn corrupt(what: String) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!(what))
}

/// The types of each domain, where they always were for the rest of the crate.
pub use crate::graphql::accounts::Account;
pub use crate::graphql::balance::{Balance, BalanceBar, Expiry, Lot, LowCredits};
pub use crate::graphql::claims::{CheckInStatus, Coupon, LuckyCredits};
pub use crate::graphql::history::{HistoryFilter, JournalEntry, JournalLine};
pub use crate::graphql::prices::{PriceOptionsInput, PriceQuote, PriceQuoteLine, TokenUsageInput};
pub use crate::graphql::program::{Plan, ProgramInfo};
pub use crate::graphql::purchases::{CreditPackage, Money, Purchase, PurchaseStatus};

pub(crate) fn parse_validity(value: Option<&str>) -> Result<Option<Validity>, ServiceError> {
    value.map(|v| v.parse::<Validity>().map_err(|e| ServiceError::bad_input(format!("validFor: {e}")))).transpose()
}
