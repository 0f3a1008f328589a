//! What a transaction costs on the wire to PostgreSQL, counted by a proxy that reads what the
//! driver sends (`support::wire`), and that the driver's two changes for it keep transactions
//! what they were (vendor/README.md; docs/benchmarks.md, change 26):
//!
//! - a transaction's `BEGIN` goes in the same flush as its first statement (vendor/sqlx-postgres),
//!   so the statement runs inside the transaction: a rollback undoes it, whether it was prepared,
//!   a simple query or a savepoint;
//! - a connection is not pinged when the pool hands it out (unless it has been idle for a
//!   second: `db::connect`) nor when it is given back (vendor/sqlx-core), so a transaction of N
//!   statements is N + 1 exchanges. A connection the server ended fails one statement, is closed
//!   when given back, and the next statement gets a new one.

use crate::support::wire::{Counts, WireCount};
use crate::support::{Backend, TestDb};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use std::time::Duration;

const INSERT: &str = "INSERT INTO wire (id) VALUES ($1)";
const COUNT: &str = "SELECT count(*) AS n FROM wire WHERE id = $1";

/// A fresh database, a table, and a pool of one connection to it through the counting proxy.
async fn through_proxy() -> (TestDb, WireCount, DatabaseConnection) {
    let db = TestDb::new(Backend::Postgres).await;
    let direct = url::Url::parse(&db.url).unwrap();
    let wire = WireCount::start(&format!("{}:{}", direct.host_str().unwrap(), direct.port().unwrap_or(5432))).await;
    let mut url = direct.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(wire.port)).unwrap();
    url.set_query(Some("sslmode=disable"));
    let pool = credits::db::connect(url.as_str(), 1).await.expect("connect through the proxy");
    pool.execute_unprepared("CREATE TABLE wire (id bigint PRIMARY KEY)").await.unwrap();
    (db, wire, pool)
}

fn statement(sql: &str, id: i64) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, [id.into()])
}

async fn count(db: &impl ConnectionTrait, id: i64) -> i64 {
    db.query_one_raw(statement(COUNT, id)).await.unwrap().unwrap().try_get::<i64>("", "n").unwrap()
}

async fn now(txn: &DatabaseTransaction) -> String {
    let row = txn.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT now()::text AS at")).await.unwrap().unwrap();
    row.try_get::<String>("", "at").unwrap()
}

#[tokio::test]
async fn a_transaction_is_one_exchange_per_statement_and_one_for_its_commit() {
    let (_db, wire, pool) = through_proxy().await;
    // Prepare both statements on the connection first: preparing is an exchange of its own.
    let txn = pool.begin().await.unwrap();
    txn.execute_raw(statement(INSERT, 1)).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(count(&pool, 1).await, 1);
    wire.take();

    // A statement alone: one exchange.
    assert_eq!(count(&pool, 1).await, 1);
    let alone = wire.take();
    assert_eq!(alone.exchanges - alone.pings, 1, "{alone:?}");

    // Ten transactions of one statement, then ten of three: the statements and the commit, the
    // `BEGIN` in the first statement's exchange, no ping. A ping is allowed once in each ten: the
    // pool pings a connection idle for a second, and a loaded machine may stall a test that long.
    for (first, statements) in [(10, 1), (100, 3)] {
        for id in (first..first + 10 * statements).step_by(statements as usize) {
            let txn = pool.begin().await.unwrap();
            for id in id..id + statements {
                txn.execute_raw(statement(INSERT, id)).await.unwrap();
            }
            txn.commit().await.unwrap();
        }
        let sent = wire.take();
        assert_eq!(sent.begins_alone, 0, "{statements} a transaction: {sent:?}");
        assert!(sent.pings <= 1, "{statements} a transaction: {sent:?}");
        assert_eq!(sent.exchanges - sent.pings, 10 * (statements as u64 + 1), "{statements} a transaction: {sent:?}");
    }

    // A transaction that ends before any statement sends nothing at all.
    pool.begin().await.unwrap().commit().await.unwrap();
    pool.begin().await.unwrap().rollback().await.unwrap();
    drop(pool.begin().await.unwrap());
    let empty = wire.take();
    assert_eq!(empty.exchanges - empty.pings, 0, "{empty:?}");
    assert_eq!(wire.counts().connections, 0, "no new connection: the first served throughout");
}

#[tokio::test]
async fn the_first_statement_of_a_transaction_runs_inside_it() {
    let (_db, wire, pool) = through_proxy().await;

    // A prepared statement first (its `BEGIN` in the same flush), rolled back.
    let txn = pool.begin().await.unwrap();
    txn.execute_raw(statement(INSERT, 1)).await.unwrap();
    assert_eq!(count(&txn, 1).await, 1, "the transaction sees its own insert");
    txn.rollback().await.unwrap();
    assert_eq!(count(&pool, 1).await, 0, "rolled back with its transaction");

    // The same, the transaction dropped rather than rolled back.
    let txn = pool.begin().await.unwrap();
    txn.execute_raw(statement(INSERT, 2)).await.unwrap();
    drop(txn);
    assert_eq!(count(&pool, 2).await, 0, "rolled back when dropped");

    // A simple query first (its `BEGIN` sent on its own, before it).
    let txn = pool.begin().await.unwrap();
    txn.execute_unprepared("INSERT INTO wire (id) VALUES (3)").await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(count(&pool, 3).await, 0, "a simple query first is inside the transaction too");

    // A savepoint first.
    let txn = pool.begin().await.unwrap();
    let nested = txn.begin().await.unwrap();
    nested.execute_raw(statement(INSERT, 4)).await.unwrap();
    nested.commit().await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(count(&pool, 4).await, 0, "a savepoint first is inside the transaction");

    // One transaction's statements share its start: `now()` is the transaction's.
    let txn = pool.begin().await.unwrap();
    let first = now(&txn).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(now(&txn).await, first, "both statements ran in one transaction");
    txn.commit().await.unwrap();

    // And a committed one stays.
    let txn = pool.begin().await.unwrap();
    txn.execute_raw(statement(INSERT, 5)).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(count(&pool, 5).await, 1);
    let counts: Counts = wire.counts();
    assert_eq!(counts.connections, 1, "one connection throughout: {counts:?}");
}

#[tokio::test]
async fn a_failed_first_statement_rolls_back_and_the_connection_serves_on() {
    let (_db, wire, pool) = through_proxy().await;
    pool.execute_raw(statement(INSERT, 1)).await.unwrap();

    let txn = pool.begin().await.unwrap();
    let duplicate = txn.execute_raw(statement(INSERT, 1)).await.expect_err("the key is taken");
    assert_eq!(credits::store::db_error_code(&duplicate).as_deref(), Some("23505"), "{duplicate}");
    let after = txn.execute_raw(statement(INSERT, 2)).await.expect_err("the transaction is aborted");
    assert_eq!(credits::store::db_error_code(&after).as_deref(), Some("25P02"), "{after}");
    txn.rollback().await.unwrap();
    assert_eq!(count(&pool, 2).await, 0);

    let txn = pool.begin().await.unwrap();
    txn.execute_raw(statement(INSERT, 3)).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(count(&pool, 3).await, 1);
    assert_eq!(wire.counts().connections, 1, "the connection served on");
}

#[tokio::test]
async fn a_connection_the_server_ended_fails_once_and_is_replaced() {
    let (db, wire, pool) = through_proxy().await;
    let pid = pool
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_backend_pid() AS pid"))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i32>("", "pid")
        .unwrap();
    let admin = credits::db::connect(&db.url, 1).await.unwrap();
    admin.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, "SELECT pg_terminate_backend($1)", [pid.into()])).await.unwrap();
    admin.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Handed out without a ping (idle for less than a second), the connection fails its
    // statement, and is closed rather than given back.
    let txn = pool.begin().await.unwrap();
    let failed = txn.execute_raw(statement(INSERT, 1)).await;
    assert!(failed.is_err(), "the ended connection cannot serve: {failed:?}");
    drop(txn);
    // The next statement gets a new connection.
    let mut served = None;
    for _ in 0..50 {
        let txn = pool.begin().await.unwrap();
        match txn.execute_raw(statement(INSERT, 2)).await {
            Ok(_) => {
                txn.commit().await.unwrap();
                served = Some(());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(served.is_some(), "a new connection serves");
    assert_eq!(count(&pool, 1).await, 0);
    assert_eq!(count(&pool, 2).await, 1);
    assert_eq!(wire.counts().connections, 2, "one new connection: {:?}", wire.counts());
}
