//! For random users, the endpoint returns exactly the reference answer: the
//! fixed variant changes how PostgreSQL finds the rows, never which rows.

use debuglab_harness::testing::TestDatabase;
use debuglab_harness::{PoolSettings, Variant};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use slow_query::data::{reference_recent_orders, ORDERS_TEMPLATE, USERS};
use slow_query::SCENARIO;

fn answers_equal_reference(variant: Variant, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (test_db, pool, recent_orders) = runtime.block_on(async {
        let test_db =
            TestDatabase::create(&format!("slow_query_{variant}"), Some(&ORDERS_TEMPLATE)).await;
        let recent_orders = SCENARIO.prepare(&test_db.database, variant).await.unwrap();
        let pool = test_db
            .database
            .pool(PoolSettings {
                max_connections: 1,
                acquire_timeout: std::time::Duration::from_secs(10),
            })
            .await
            .unwrap();
        (test_db, pool, recent_orders)
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(&(-3i64..=USERS + 3), |user_id| {
        let answer = runtime
            .block_on(recent_orders(&pool, user_id))
            .expect("the query runs");
        prop_assert_eq!(answer, reference_recent_orders(user_id), "user {}", user_id);
        Ok(())
    });
    runtime.block_on(async {
        pool.close().await;
        test_db.close().await;
    });
    if let Err(failure) = result {
        panic!("{variant}: {failure}");
    }
}

#[test]
fn fixed_answers_equal_the_reference_for_random_users() {
    answers_equal_reference(Variant::Fixed, 200);
}

#[test]
fn buggy_answers_equal_the_reference_too() {
    // Fewer cases: each one is a sequential scan.
    answers_equal_reference(Variant::Buggy, 24);
}
