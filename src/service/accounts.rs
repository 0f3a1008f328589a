use crate::entity::account;
use crate::ledger::{AccountStatus, Credits, LotClass, LotSource};
use crate::service::input::ExternalId;
use crate::service::posting::{self, EntryMeta};
use crate::service::{Engine, Refusal, ServiceError, tx};
use crate::store::{self, lots};
use chrono::{DateTime, Utc};

/// An account as the use cases answer it: typed, with nothing of how it is stored. The GraphQL
/// `Account` is built from it; its other reads (balance, lots, lucky credits, ...) take it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The ledger's own id, what the account's other reads are keyed on; never shown.
    pub id: i64,
    /// The product's own id for this account.
    pub external_id: String,
    pub plan: String,
    pub status: AccountStatus,
    pub identity_verified: bool,
    pub credit_mail_enabled: bool,
    /// The cached balance (the sum of its lots' remaining, kept with the journal): what the
    /// low-credit rule reads.
    pub balance: Credits,
    pub created_at: DateTime<Utc>,
    /// The code friends sign up with, where the program has referrals.
    pub referral_code: Option<String>,
    /// When this purchase cycle's low-credit warning went out; none once re-armed.
    pub low_credits_notified_at: Option<DateTime<Utc>>,
}

impl AccountView {
    /// The stored row, read back: an unknown status or a negative balance is a corrupt row.
    pub(crate) fn of(row: account::Model) -> Result<AccountView, ServiceError> {
        let status = status_of(&row)?;
        if row.balance_micros < 0 {
            return Err(anyhow::anyhow!("account {}: negative cached balance {}", row.id, row.balance_micros).into());
        }
        Ok(AccountView {
            id: row.id,
            status,
            balance: Credits::from_micros(row.balance_micros),
            external_id: row.external_id,
            plan: row.plan,
            identity_verified: row.identity_verified,
            credit_mail_enabled: row.credit_mail_enabled,
            created_at: row.created_at,
            referral_code: row.referral_code,
            low_credits_notified_at: row.low_credits_notified_at,
        })
    }
}

impl Engine {
    /// A program that needs a verified identity to spend (archipelag) refuses an unverified
    /// account here: like authentication, before the idempotency key is looked at, and never
    /// stored (domain.md, amounts and limits). `market` says the market needs it whatever the
    /// program. An unknown account passes: the operation then answers `NOT_FOUND` itself.
    pub(crate) async fn require_identity_to_spend(&self, account: &ExternalId, market: bool) -> Result<(), ServiceError> {
        if !(market || self.program.spending_requires_identity) {
            return Ok(());
        }
        match store::accounts::by_external_id(&self.db, account.as_str()).await? {
            Some(found) if !found.identity_verified => Err(Refusal::identity_required("spending credits needs a verified identity").into()),
            _ => Ok(()),
        }
    }

    /// Creates the account, or returns the existing one: idempotent on the external id. The
    /// program's sign-up grant is made in the same transaction, so it is made exactly once.
    pub async fn create_account(
        &self,
        external_id: &str,
        plan: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(AccountView, bool), ServiceError> {
        let (account, created, _) = self.create_referred_account(external_id, plan, None, now).await?;
        Ok((account, created))
    }

    /// `create_account` with a friend's referral code; also says whether the code was accepted
    /// (`None` without a code, or when the account already existed).
    pub async fn create_referred_account(
        &self,
        external_id: &str,
        plan: Option<&str>,
        referral_code: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(AccountView, bool, Option<bool>), ServiceError> {
        let external_id = ExternalId::parse(external_id)?;
        if let Some(plan) = plan
            && self.program.plan(plan).is_none()
        {
            return Err(ServiceError::bad_input(format!("unknown plan {plan:?}")));
        }
        let plan = plan.unwrap_or(&self.program.default_plan).to_string();
        let (program, referral_code) = (self.program.clone(), referral_code.map(str::to_string));
        tx::write(&self.writer, |txn| {
            let (external_id, plan, program, ledger, referral_code) =
                (external_id.clone(), plan.clone(), program.clone(), self.clone(), referral_code.clone());
            Box::pin(async move {
                if let Some(existing) = store::accounts::by_external_id(txn, external_id.as_str()).await? {
                    if existing.plan != plan {
                        return Err(ServiceError::IdempotencyConflict(format!(
                            "account {:?} already exists on plan {:?}",
                            external_id.as_str(),
                            existing.plan
                        )));
                    }
                    return Ok((AccountView::of(existing)?, false, None));
                }
                let account = store::accounts::insert(txn, external_id.as_str(), &plan, now).await?;
                if let Some(grant) = &program.sign_up_grant {
                    let lot = lots::NewLot {
                        account_id: account.id,
                        class: LotClass::Promotional,
                        source: LotSource::SignUp,
                        amount: grant.credits,
                        granted_at: now,
                        expires_at: grant.validity.expires_at(now),
                        origin_kind: Some("account"),
                        origin_id: Some(account.id.to_string()),
                        priority: crate::ledger::Priority::DEFAULT,
                        effective_at: None,
                        features: None,
                    };
                    posting::credit(txn, lot, EntryMeta { reason: Some("sign-up grant"), ..EntryMeta::now("sign_up", now) }).await?;
                }
                crate::service::plans::grant_period_credits(txn, &program, &account, now).await?;
                let referral_accepted =
                    crate::service::referrals::on_sign_up(txn, &program, &ledger, account.clone(), referral_code.as_deref(), now).await?;
                let account = store::accounts::by_id(txn, account.id).await?.ok_or_else(|| anyhow::anyhow!("account vanished"))?;
                tracing::info!(account.id = account.id, account.plan = %account.plan, "account created");
                Ok((AccountView::of(account)?, true, referral_accepted))
            })
        })
        .await
    }

    /// Moves an account between active, inactive and suspended. Idempotent by nature.
    pub async fn set_status(&self, external_id: &str, status: AccountStatus) -> Result<AccountView, ServiceError> {
        let external_id = ExternalId::parse(external_id)?;
        tx::write(&self.writer, |txn| {
            let external_id = external_id.clone();
            Box::pin(async move {
                let locked = lock_by_external_id(txn, external_id.as_str()).await?;
                if locked.status == status.as_str() {
                    return AccountView::of(locked);
                }
                let updated = store::accounts::set_status(txn, locked, status.as_str()).await?;
                tracing::info!(account.id = updated.id, account.status = %status, "account status changed");
                AccountView::of(updated)
            })
        })
        .await
    }

    pub async fn account(&self, external_id: &str) -> Result<AccountView, ServiceError> {
        let external_id = ExternalId::parse(external_id)?;
        let found = store::accounts::by_external_id(&self.db, external_id.as_str()).await?;
        AccountView::of(found.ok_or_else(|| ServiceError::NotFound(format!("no account {:?}", external_id.as_str())))?)
    }
}

/// The operator's account search (the console's): accounts whose id starts with the search,
/// newest first. The search is an account id or its beginning, checked as one.
impl Engine {
    pub async fn search_accounts(
        &self,
        search: &str,
        window: &crate::store::keyset::Window,
    ) -> Result<crate::store::keyset::Page<AccountView>, ServiceError> {
        let prefix = ExternalId::parse(search)?;
        store::accounts::search_page(&self.db, prefix.as_str(), window).await?.try_map(AccountView::of)
    }

    pub async fn search_accounts_count(&self, search: &str) -> Result<u64, ServiceError> {
        let prefix = ExternalId::parse(search)?;
        Ok(crate::store::keyset::count(&self.db, store::accounts::with_id_prefix(prefix.as_str())).await?)
    }

    /// One account's audit (`crate::audit::run_for_account`), for the operator.
    pub async fn audit_account(
        &self,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(AccountView, crate::audit::AuditReport), ServiceError> {
        let account = self.account(external_id).await?;
        let mut report = crate::audit::run_for_account(&self.db, account.id, now).await?;
        report.problems.extend(crate::audit::check_program(&self.db, &self.program, Some(account.id)).await?);
        Ok((account, report))
    }
}

/// Resolves and locks an account inside a write transaction.
pub(crate) async fn lock_by_external_id(txn: &sea_orm::DatabaseTransaction, external_id: &str) -> Result<account::Model, ServiceError> {
    store::accounts::lock_by_external_id(txn, external_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no account {external_id:?}")))
}

pub(crate) fn status_of(account: &account::Model) -> Result<AccountStatus, ServiceError> {
    account.status.parse().map_err(|e: String| ServiceError::Internal(anyhow::anyhow!("account {}: {e}", account.id)))
}
