use crate::on_both;
use crate::support::{Backend, TestApp, error_code};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

const CHANGE: &str = "mutation($a: ID!, $p: String!, $k: String!) { changePlan(input: {accountId: $a, plan: $p, idempotencyKey: $k}) { account { plan } granted grantedLotId } }";
const LOTS: &str = "query($a: ID!) { account(id: $a) { lots { edges { node { source class granted expiresAt } } } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn arkain_plan_credits_come_each_calendar_month_and_end_with_it(backend: Backend) {
    let app = TestApp::spawn_with(backend, "arkain").await;
    let plans = app.gql(&app.service, "{ plans { code monthlyCredits storageQuotaGb price { amountMinor } paid } }", json!({})).await;
    assert_eq!(
        plans["data"]["plans"],
        json!([
            { "code": "free", "monthlyCredits": "50", "storageQuotaGb": "5", "price": null, "paid": false },
            { "code": "membership", "monthlyCredits": "1000", "storageQuotaGb": "15", "price": { "amountMinor": 1400 }, "paid": true },
        ])
    );

    // Signing up on the 31st of January grants January's credits, ending at February's start.
    app.clock.set(at("2026-01-31T12:00:00Z"));
    app.create_account("coder").await;
    let lots = app.gql(&app.service, LOTS, json!({ "a": "coder" })).await;
    assert_eq!(
        lots["data"]["account"]["lots"]["edges"][0]["node"],
        json!({ "source": "MONTHLY_PLAN", "class": "FREE", "granted": "50", "expiresAt": "2026-02-01T00:00:00+00:00" })
    );
    app.clock.set(at("2026-01-31T23:59:59Z"));
    assert_eq!(app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap(), None, "once per month");
    assert_eq!(app.balance("coder").await, "50");
    app.clock.set(at("2026-02-01T00:00:00Z"));
    assert_eq!(app.balance("coder").await, "0", "gone at the month's end");
    let february = app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap().expect("February's credits");
    assert_eq!(february.expires_at, at("2026-03-01T00:00:00Z"), "a 28-day February");
    assert_eq!(app.ledger.grant_plan_credits("coder", app.clock.now()).await.unwrap(), None);

    // An upgrade grants the new plan's credits for this month, once; flipping back and forth mints nothing.
    let up = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-1" })).await;
    assert_eq!(up["data"]["changePlan"]["granted"], json!("1000"), "{up}");
    assert_eq!(app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-1" })).await["data"], up["data"]);
    let conflict = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "free", "k": "up-1" })).await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT");
    let down = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "free", "k": "down-1" })).await;
    assert_eq!(down["data"]["changePlan"]["granted"], json!(null));
    let again = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "membership", "k": "up-2" })).await;
    assert_eq!(again["data"]["changePlan"]["granted"], json!(null), "{again}");
    assert_eq!(app.balance("coder").await, "1050");

    let by_user = app.gql(&app.user("coder"), CHANGE, json!({ "a": "coder", "p": "free", "k": "u" })).await;
    assert_eq!(error_code(&by_user), "FORBIDDEN", "a user never changes its own plan");
    let unknown = app.gql(&app.service, CHANGE, json!({ "a": "coder", "p": "gold", "k": "g" })).await;
    assert_eq!(error_code(&unknown), "BAD_USER_INPUT");
    app.assert_audit_clean().await;
}

async fn carat_subscriptions_renew_a_month_from_their_start(backend: Backend) {
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-01-31T10:00:00Z"));
    let created = app
        .gql(
            &app.service,
            "mutation { createAccount(input: {externalId: \"subscriber\", plan: \"plus\"}) { account { plan } } }",
            json!({}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    let lots = app.gql(&app.service, LOTS, json!({ "a": "subscriber" })).await;
    assert_eq!(
        lots["data"]["account"]["lots"]["edges"][0]["node"],
        json!({ "source": "SUBSCRIPTION", "class": "PAID", "granted": "10000", "expiresAt": "2026-02-28T10:00:00+00:00" })
    );
    app.clock.set(at("2026-02-28T09:59:59Z"));
    assert_eq!(app.ledger.grant_plan_credits("subscriber", app.clock.now()).await.unwrap(), None);
    app.clock.set(at("2026-02-28T10:00:00Z"));
    let renewal = app.ledger.grant_plan_credits("subscriber", app.clock.now()).await.unwrap().expect("the renewal");
    assert_eq!(renewal.expires_at, at("2026-03-31T10:00:00Z"), "counted from the original anchor");
    assert_eq!(app.balance("subscriber").await, "10000");

    // Concurrent renewals in one period grant once.
    app.clock.set(at("2026-03-31T10:00:00Z") + Duration::seconds(1));
    let now = app.clock.now();
    let results = futures::future::join_all((0..10).map(|_| app.ledger.grant_plan_credits("subscriber", now))).await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Some(_)))).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok()));
    app.assert_audit_clean().await;
}

on_both!(arkain_plan_credits_come_each_calendar_month_and_end_with_it, carat_subscriptions_renew_a_month_from_their_start);

/// Creates `id` on carat's Plus plan, a subscription that renews a month from its start.
async fn create_on_plus(app: &TestApp, id: &str) {
    let r = app
        .gql(
            &app.service,
            "mutation($id: ID!) { createAccount(input: {externalId: $id, plan: \"plus\"}) { created } }",
            json!({ "id": id }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
}

/// The continuous renewal grants each subscription at its own instant, once, however often it
/// runs; an account that left for a plan without credits, or cannot receive credits, stops
/// waiting instead of being picked at every tick.
async fn the_continuous_renewal_grants_at_the_instant_and_lets_go_of_the_rest(backend: Backend) {
    use credits::service::jobs::Job;
    let app = TestApp::spawn_with(backend, "carat").await;
    app.clock.set(at("2026-01-31T10:00:00Z"));
    for id in ["stays", "leaves", "suspended"] {
        create_on_plus(&app, id).await;
    }
    let left = app.gql(&app.service, CHANGE, json!({ "a": "leaves", "p": "free", "k": "down" })).await;
    assert!(left["errors"].is_null(), "{left}");
    let r = app
        .gql(&app.service, "mutation { setAccountStatus(input: {accountId: \"suspended\", status: SUSPENDED}) { status } }", json!({}))
        .await;
    assert!(r["errors"].is_null(), "{r}");

    let renews_at = || async {
        use sea_orm::{EntityTrait, QueryOrder};
        credits::entity::account::Entity::find()
            .order_by_asc(credits::entity::account::Column::Id)
            .all(&app.ledger.db)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.external_id, a.renews_at))
            .collect::<Vec<_>>()
    };
    let due = at("2026-02-28T10:00:00Z");
    assert!(renews_at().await.iter().all(|(_, r)| *r == Some(due)), "{:?}", renews_at().await);

    let early = app.ledger.run_job(Job::RenewDueSubscriptions, due - Duration::microseconds(1)).await.unwrap();
    assert_eq!(early.items, 0, "not before the instant");
    let on_time = app.ledger.run_job(Job::RenewDueSubscriptions, due + Duration::seconds(7)).await.unwrap();
    assert_eq!(on_time.items, 3, "the three waiting accounts are taken");
    assert_eq!(
        renews_at().await,
        vec![("stays".to_string(), Some(at("2026-03-31T10:00:00Z"))), ("leaves".to_string(), None), ("suspended".to_string(), None),]
    );
    app.clock.set(due + Duration::seconds(7));
    assert_eq!(app.balance("stays").await, "10000", "renewed");
    assert_eq!(app.balance("leaves").await, "100", "the Plus month ended; Free has only its daily free credits");
    let again = app.ledger.run_job(Job::RenewDueSubscriptions, due + Duration::minutes(1)).await.unwrap();
    assert_eq!(again.items, 0, "nobody is picked twice");
    // The renewal is dated at its instant, not when the job came round.
    let history =
        app.gql(&app.service, "{ account(id: \"stays\") { history(first: 1) { nodes { operation effectiveAt } } } }", json!({})).await;
    assert_eq!(
        history["data"]["account"]["history"]["nodes"][0],
        json!({ "operation": "plan_credits", "effectiveAt": "2026-02-28T10:00:00+00:00" }),
        "{history}"
    );
    app.assert_audit_clean().await;
}

/// Subscriptions of different anchors renewed in one batch each wait for their own next renewal
/// (the batch points them all in one statement).
async fn a_batch_of_renewals_points_each_at_its_own_next(backend: Backend) {
    use credits::service::jobs::Job;
    use sea_orm::EntityTrait;
    let app = TestApp::spawn_with(backend, "carat").await;
    for (id, created) in [("mid-month", "2026-01-15T09:00:00Z"), ("month-end", "2026-01-31T10:00:00Z")] {
        app.clock.set(at(created));
        create_on_plus(&app, id).await;
    }
    let renewed = app.ledger.run_job(Job::RenewDueSubscriptions, at("2026-03-01T00:00:00Z")).await.unwrap();
    assert_eq!(renewed.items, 2, "both overdue, one batch");
    let accounts = credits::entity::account::Entity::find().all(&app.ledger.db).await.unwrap();
    let next: std::collections::BTreeMap<_, _> = accounts.into_iter().map(|a| (a.external_id, a.renews_at)).collect();
    assert_eq!(next["mid-month"], Some(at("2026-03-15T09:00:00Z")));
    assert_eq!(next["month-end"], Some(at("2026-03-31T10:00:00Z")));
    app.assert_audit_clean().await;
}

on_both!(the_continuous_renewal_grants_at_the_instant_and_lets_go_of_the_rest, a_batch_of_renewals_points_each_at_its_own_next);

/// Migration 000034 makes the plan lot its own claim: a database whose grants were claimed in
/// `claims` keeps them, even for a lot that does not name its grant key, and the unique index
/// on the grant key refuses a second plan lot for a period.
async fn plan_grants_claimed_before_the_migration_stay_granted(backend: Backend) {
    use credits::ledger::{Credits, LotClass, LotSource, Priority};
    use credits::store::{self, lots::NewLot};
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let db = crate::support::TestDb::new(backend).await;
    let conn = credits::db::connect(&db.url, 1).await.unwrap();
    let names: Vec<String> = migration::Migrator::migrations().iter().map(|m| m.name().to_string()).collect();
    let before = names.iter().position(|n| n == "m20261205_000034_plan_grants_by_lot").expect("the migration") as u32;
    migration::Migrator::up(&conn, Some(before)).await.unwrap();
    let (june, july) = (at("2026-06-20T08:00:00Z"), at("2026-07-01T00:00:00Z"));
    // Three accounts on arkain's free plan (50 a calendar month): July claimed by a lot naming
    // its key, July claimed by a lot naming nothing, and nothing claimed.
    let mut ids = Vec::new();
    for (name, origin) in [("named", Some("plan")), ("unnamed", None), ("unclaimed", None)] {
        let account = store::accounts::insert(&conn, name, "free", june).await.unwrap();
        ids.push(account.id);
        if name == "unclaimed" {
            continue;
        }
        let lot = NewLot {
            account_id: account.id,
            class: LotClass::Free,
            source: LotSource::MonthlyPlan,
            amount: Credits::from_micros(50_000_000),
            granted_at: july,
            expires_at: Some(at("2026-08-01T00:00:00Z")),
            origin_kind: origin,
            origin_id: origin.map(|_| "free:2026-07".to_string()),
            priority: Priority::DEFAULT,
            effective_at: None,
            features: None,
        };
        let lot = store::lots::insert(&conn, lot).await.unwrap();
        store::claims::insert(&conn, account.id, "plan_credits", "free:2026-07", Some(lot.id), 50_000_000, july).await.unwrap();
    }
    let _ = conn.close().await;

    let app = TestApp::spawn_on(db, backend, "arkain").await;
    let when = at("2026-07-10T08:00:00Z");
    assert_eq!(app.ledger.grant_plan_credits("named", when).await.unwrap(), None, "claimed before: not again");
    assert_eq!(app.ledger.grant_plan_credits("unnamed", when).await.unwrap(), None, "claimed, its lot named since");
    assert_eq!(app.ledger.grant_plan_credits_many(&ids, when).await.unwrap(), 1, "the batch: only the unclaimed one");
    assert_eq!(app.ledger.grant_plan_credits("unclaimed", when).await.unwrap(), None, "granted once");
    let db = &app.ledger.db;
    let second = format!(
        "INSERT INTO lots (account_id, class, source, granted_micros, remaining_micros, granted_at, origin_kind, origin_id, open) \
         SELECT account_id, class, source, granted_micros, remaining_micros, granted_at, origin_kind, origin_id, open \
         FROM lots WHERE account_id = {} AND origin_kind = 'plan'",
        ids[1]
    );
    let refused = db.execute_unprepared(&second).await.expect_err("a second plan lot for a grant key");
    assert!(refused.to_string().to_lowercase().contains("unique"), "{refused}");

    // Going back: the lot granted since gets the claim the code before would look for.
    migration::Migrator::down(db, Some(1)).await.unwrap();
    let claims = "SELECT COUNT(*), COUNT(DISTINCT account_id) FROM claims WHERE kind = 'plan_credits' AND period = 'free:2026-07'";
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), claims)).await.unwrap().unwrap();
    let counted: (i64, i64) = (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
    assert_eq!(counted, (3, 3), "the two claims kept and one for the lot granted after the migration");
}

on_both!(plan_grants_claimed_before_the_migration_stay_granted);
