//! For random numbers of replicas and shoppers, TTLs and pauses, the fixed
//! storefront answers every request with the report as the database has
//! it — what the buggy one does — and computes it at most twice per expiry.

use std::time::Duration;

use cache_stampede::workload::simulate;
use cache_stampede::{Plan, MAX_COMPUTATIONS_PER_EXPIRY, SALES};
use debuglab_harness::testing::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::use_replica_program;

#[test]
fn fixed_replicas_answer_right_and_compute_once_per_expiry() {
    use_replica_program();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 3,
        ..Config::default()
    });
    let plans = (
        1usize..=3,
        1usize..=12,
        100u64..=250,
        5u64..=30,
        any::<u64>(),
    )
        .prop_map(|(replicas, clients, ttl_ms, think_ms, seed)| Plan {
            replicas,
            clients,
            think: Duration::from_millis(think_ms),
            ttl: Duration::from_millis(ttl_ms),
            traffic: Duration::from_millis(500),
            sales_at: None,
            seed,
            barrier: false,
        });
    let result = runner.run(&plans, |plan| {
        let figures = runtime.block_on(async {
            let test_db = TestDatabase::create("cache_stampede_props", Some(&SALES)).await;
            let redis = debuglab_harness::redis::server()
                .await
                .unwrap()
                .lease_database()
                .await
                .unwrap();
            let figures = simulate(
                &test_db.database,
                &redis,
                "fixed",
                plan,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            redis.release().await;
            test_db.close().await;
            figures
        });
        prop_assert!(
            figures.replica_failures.is_empty(),
            "{:?}",
            figures.replica_failures
        );
        let requests = &figures.requests;
        prop_assert!(requests.answered > 0);
        prop_assert_eq!((requests.failed, requests.wrong, requests.hung), (0, 0, 0));
        // At least the first computation, and at most two per expiry (plus
        // the first, whatever the TTL).
        let computations = &figures.computations;
        prop_assert!(computations.computations >= 1.0);
        prop_assert!(
            computations.computations <= MAX_COMPUTATIONS_PER_EXPIRY * computations.expiries + 1.0,
            "{:?}",
            computations
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
