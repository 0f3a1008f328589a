//! The operators' log: every admin mutation, who sent it (the admin token's subject), when, on
//! which account, with which arguments. Credits an operator moves also carry the subject on
//! their journal entries (`EntryMeta::actor`); this log adds what moves no credits (a status,
//! an identity, a coupon, a job run, a redelivery) and answers "who did that" in one place.
//!
//! It is written by the GraphQL layer after each admin mutation that succeeded
//! (`graphql::admin_log`), so no operation can be added and forgotten.

use crate::entity::admin_action;
use crate::service::paging::{Page, Window};
use crate::service::{Engine, ServiceError};
use crate::store::{self, admin_actions::NewAction};
use chrono::{DateTime, Utc};

/// One logged action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminActionView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub action: String,
    pub account_id: Option<String>,
    /// The mutation's arguments, JSON.
    pub arguments: String,
}

impl From<admin_action::Model> for AdminActionView {
    fn from(row: admin_action::Model) -> AdminActionView {
        AdminActionView {
            id: row.id,
            at: row.at,
            subject: row.subject,
            action: row.action,
            account_id: row.account_id,
            arguments: row.arguments,
        }
    }
}

impl Engine {
    pub async fn log_admin_action(&self, new: NewAction<'_>) -> Result<(), ServiceError> {
        store::admin_actions::insert(&self.db, NewAction { at: crate::ledger::time::truncate(new.at), ..new }).await?;
        Ok(())
    }

    /// One page of the log, newest first: everyone's, or one operator's.
    pub async fn admin_actions_page(&self, subject: Option<&str>, window: &Window) -> Result<Page<AdminActionView>, ServiceError> {
        let page = store::admin_actions::page(&self.db, subject, window).await?;
        page.try_map(|row| Ok::<_, ServiceError>(AdminActionView::from(row)))
    }

    pub async fn admin_actions_count(&self, subject: Option<&str>) -> Result<u64, ServiceError> {
        Ok(store::admin_actions::count(&self.db, subject).await?)
    }
}
