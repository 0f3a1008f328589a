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
    LotClass <=> ledger::LotClass {
        /// Bought with money (purchases, subscriptions) or earned on the market.
        Paid,
        /// Given by a promotion (check-in, referral, coupon, bonus, lucky credits, ...).
        Promotional,
        /// Given by the plan (monthly plan credits, daily free credits).
        Free
    }
);
mirror_enum!(
    /// Where a lot came from.
    LotSource <=> ledger::LotSource {
        /// Credits bought (`purchaseCredits`, then `confirmPurchase`).
        Purchase,
        /// A subscription's credits for its period.
        Subscription,
        /// A plan's monthly credits.
        MonthlyPlan,
        /// The daily check-in.
        CheckIn,
        /// A referral bonus, to the referrer or the friend.
        Referral,
        /// Credits granted when the account was created.
        SignUp,
        /// A redeemed coupon.
        Coupon,
        /// An operator's grant for feedback.
        Feedback,
        /// An operator's grant for an event (a survey, ...).
        Event,
        /// The bonus granted with a first purchase; it is revoked if that purchase is refunded.
        FirstPurchaseBonus,
        /// The day's free credits; they do not carry over to the next UTC day.
        DailyFree,
        /// A claimed ad reward.
        AdReward,
        /// Claimed daily lucky credits.
        Lucky,
        /// What a market provider earned for the jobs it ran.
        ProviderEarnings,
        /// An operator's grant with no other source (`grantCredits`' default).
        Adjustment,
        /// Unused plan credits carried over from the period that ended (the plan's `rollover`
        /// option), valid for the program's number of later periods; never rolled again.
        Rollover,
        /// Paid credits another user gave this account (`giftCredits`), one lot per part of the
        /// gift, each with the expiry the sender's credits had.
        Gift,
    }
);
mirror_enum!(
    /// Active accounts do everything; inactive ones can be charged only for storage; suspended
    /// ones can only be read.
    AccountStatus <=> ledger::AccountStatus {
        /// Reads and every operation.
        Active,
        /// Keeps its credits; may be charged only for storage.
        Inactive,
        /// May only be read.
        Suspended
    }
);
mirror_enum!(
    /// What a journal entry records.
    EntryKind <=> StoreKind {
        /// Credits granted: a new lot (purchase, plan, claim, coupon, operator grant, ...).
        Grant,
        /// Credits charged: a spend, a captured reservation, a metered settlement.
        Spend,
        /// A lot's remainder written off at its expiry instant (or at once, by an operator's
        /// `changeLotExpiry` to now, with their name and reason).
        Expire,
        /// A refunded purchase's unused credits taken back.
        Refund,
        /// Promotional credits taken back (the bonus of a refunded purchase).
        Revoke,
        /// A correction of an account's credits, up or down.
        Adjust,
        /// Credits moved from a market consumer to the provider when a job completes.
        Transfer,
        /// Credits taken from lots into a reservation.
        Hold,
        /// Held credits given back to the lots they came from.
        Release,
        /// What remained of a lot, voided by an operator (`voidLot`), with the reason and who did it.
        Void,
        /// An operator moved a lot's expiry (`changeLotExpiry`): amount 0 and no lines (it moves
        /// no credits); the lot and its old and new expiry in `expiryChange`. One moved to now is followed by an
        /// EXPIRE entry of what remained.
        ExpiryChange,
        /// At a period's end, the plan credits left (up to the plan's rollover maximum) moved
        /// from the ending plan lot into a new ROLLOVER lot of the same account: amount 0, one
        /// line out of the old lot and one into the new. What did not carry follows as EXPIRE.
        Rollover,
        /// Paid credits this account gave another (`giftCredits`): lines out of its paid lots;
        /// `counterparty` names the recipient.
        GiftSent,
        /// Paid credits another account gave this one: lines into new GIFT lots that keep the
        /// given credits' expiry; `counterparty` names the sender.
        GiftReceived
    }
);
mirror_enum!(
    /// Where a reservation stands: held until captured, released, or past its deadline.
    ReservationStatus <=> crate::ledger::reservation::ReservationStatus {
        /// Open: its credits are held until captured, released or its deadline.
        Held,
        /// Captured: the charged part was spent and the rest given back.
        Captured,
        /// Released: everything given back.
        Released,
        /// Its deadline passed: everything given back, as if released.
        Expired
    }
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
