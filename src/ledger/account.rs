//! What an account's status allows (domain.md §2): an inactive account keeps its credits and can
//! be charged only for storage; a suspended account can only be read.

use std::fmt;
use std::str::FromStr;

/// Stored as its lowercase name, in the accounts table and (serde) in a kept refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Inactive,
    Suspended,
}

/// The feature name under which storage is charged; the one charge an inactive account accepts.
pub const STORAGE_FEATURE: &str = "storage";

impl AccountStatus {
    pub const ALL: [AccountStatus; 3] = [AccountStatus::Active, AccountStatus::Inactive, AccountStatus::Suspended];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Inactive => "inactive",
            AccountStatus::Suspended => "suspended",
        }
    }

    pub fn may_be_charged_for(self, feature: &str) -> bool {
        match self {
            AccountStatus::Active => true,
            AccountStatus::Inactive => feature == STORAGE_FEATURE,
            AccountStatus::Suspended => false,
        }
    }

    /// Purchases and grants: anything but a suspended account.
    pub fn may_receive_credits(self) -> bool {
        self != AccountStatus::Suspended
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountStatus::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| format!("unknown account status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decides_what_may_happen() {
        assert!(AccountStatus::Active.may_be_charged_for("chat"));
        assert!(AccountStatus::Inactive.may_be_charged_for("storage"));
        assert!(!AccountStatus::Inactive.may_be_charged_for("chat"));
        assert!(!AccountStatus::Suspended.may_be_charged_for("storage"));
        assert!(AccountStatus::Inactive.may_receive_credits());
        assert!(!AccountStatus::Suspended.may_receive_credits());
        for status in AccountStatus::ALL {
            assert_eq!(status.as_str().parse::<AccountStatus>(), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("{:?}", status.as_str()), "serde stores the same text");
        }
    }
}
