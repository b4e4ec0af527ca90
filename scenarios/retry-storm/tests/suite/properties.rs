//! The fix changes what was wrong and nothing else: with a warehouse that is
//! up, the fixed endpoint answers and records exactly what the buggy one
//! does; with a warehouse that is down for good, the fixed one gives up after
//! a bounded number of attempts — where the buggy one would ask forever —
//! and records each order failed, once.

use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::downstream::{Downstream, Outage, Settings};
use debuglab_harness::testing::TestDatabase;
use debuglab_harness::{PoolSettings, Variant};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use retry_storm::{
    order_key, Order, Shop, Warehouse, ATTEMPT_TIMEOUT, BASE_MIGRATIONS, SCENARIO, WAREHOUSE,
};

const POOL: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: Duration::from_secs(30),
};

fn order() -> impl Strategy<Value = (i64, i32)> {
    (1i64..=500, 1i32..=4)
}

/// What an order came to: its answer (whether it carries the warehouse's
/// ticket for it; tickets are random per warehouse) and its rows.
type Outcome = (bool, bool, Vec<String>);

/// Reserves `orders` one after another with `variant`, against a fresh
/// warehouse (`down` for good or not) and a fresh database.
async fn reserve_all(
    variant: Variant,
    orders: &[(i64, i32)],
    down: bool,
) -> (Vec<Outcome>, Vec<u64>) {
    let test_db = TestDatabase::create(&format!("retry_storm_{variant}"), None).await;
    test_db
        .database
        .migrate(&BASE_MIGRATIONS, &[])
        .await
        .unwrap();
    let outage = down.then_some(Outage {
        start: Duration::ZERO,
        length: Duration::from_secs(3600),
    });
    let warehouse = Downstream::start(Settings {
        outage,
        ..WAREHOUSE
    })
    .unwrap();
    let shop = Arc::new(Shop {
        db: test_db.database.pool(POOL).await.unwrap(),
        warehouse: Warehouse::new(warehouse.client(ATTEMPT_TIMEOUT)),
    });
    let reserve_stock = SCENARIO.reserve_stock(variant).unwrap();
    let orders: Vec<Order> = orders
        .iter()
        .enumerate()
        .map(|(index, &(item_id, quantity))| Order {
            id: index as i64 + 1,
            item_id,
            quantity,
        })
        .collect();
    // At once, as callers do: a warehouse that is down makes each wait.
    let answers =
        futures::future::join_all(orders.iter().map(|order| reserve_stock(&shop, order))).await;
    let books = warehouse.books();
    let mut outcomes = Vec::new();
    for (order, answer) in orders.iter().zip(answers) {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1 ORDER BY id")
                .bind(order.id)
                .fetch_all(&shop.db)
                .await
                .unwrap();
        let issued = books.ticket(&order_key(order.id));
        let right_ticket = answer
            .as_ref()
            .is_ok_and(|reservation| Some(reservation.ticket.as_str()) == issued);
        outcomes.push((answer.is_ok(), right_ticket, rows));
    }
    let attempts = orders
        .iter()
        .map(|order| {
            books
                .keys
                .get(&order_key(order.id))
                .map_or(0, |key| key.attempts)
        })
        .collect();
    shop.db.close().await;
    test_db.close().await;
    (outcomes, attempts)
}

#[test]
fn with_the_warehouse_up_fixed_answers_and_records_what_buggy_does() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(order(), 1..10), |orders| {
        let (buggy, _) = runtime.block_on(reserve_all(Variant::Buggy, &orders, false));
        let (fixed, attempts) = runtime.block_on(reserve_all(Variant::Fixed, &orders, false));
        prop_assert_eq!(&fixed, &buggy, "orders: {:?}", orders);
        prop_assert!(fixed
            .iter()
            .all(|(ok, right, rows)| *ok && *right && rows == &["reserved"]));
        prop_assert!(
            attempts.iter().all(|&attempts| attempts == 1),
            "{:?}",
            attempts
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn with_the_warehouse_down_for_good_fixed_gives_up_and_records_it_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let orders = [(1, 1), (2, 2), (3, 3), (4, 4)];
    let (fixed, attempts) = runtime.block_on(reserve_all(Variant::Fixed, &orders, true));
    for (ok, _, rows) in &fixed {
        assert!(!ok);
        assert_eq!(rows, &["failed"]);
    }
    // The first attempt and five retries, for each order: then it answers.
    assert_eq!(attempts, vec![6; orders.len()]);
}
