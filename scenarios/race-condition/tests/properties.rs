//! For random tips, concurrency levels and replica counts, the fixed replicas
//! end at exactly the sum of what they did: nothing lost, nothing applied twice.

use std::time::Duration;

use debuglab_harness::testing::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use race_condition::{simulate, tips, Plan, BASE_MIGRATIONS};

#[test]
fn fixed_replicas_end_at_exactly_the_sum() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let plans = (2usize..=3, 1usize..=24, 1usize..=60, any::<u64>()).prop_map(
        |(replicas, concurrency, operations_per_replica, seed)| Plan {
            replicas,
            concurrency,
            operations_per_replica,
            seed,
        },
    );
    let result = runner.run(&plans, |plan| {
        let tally = runtime.block_on(async {
            let test_db = TestDatabase::create("race_condition_props", None).await;
            test_db
                .database
                .migrate(&BASE_MIGRATIONS, &[])
                .await
                .unwrap();
            let redis = debuglab_harness::redis::server()
                .await
                .unwrap()
                .lease_database()
                .await
                .unwrap();
            let tally = simulate(
                &test_db.database,
                &redis,
                "fixed",
                plan,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
            redis.release().await;
            test_db.close().await;
            tally
        });
        prop_assert!(
            tally.replica_failures.is_empty(),
            "{:?}",
            tally.replica_failures
        );
        let operations = (plan.replicas * plan.operations_per_replica) as i64;
        let all_tips: i64 = (0..plan.replicas)
            .map(|r| {
                tips(plan.seed, r, plan.operations_per_replica)
                    .iter()
                    .sum::<i64>()
            })
            .sum();
        // Every operation succeeded, and the stores hold exactly their sum.
        prop_assert_eq!(tally.expected_likes, operations);
        prop_assert_eq!(tally.actual_likes, operations);
        prop_assert_eq!(tally.actual_tips, operations);
        prop_assert_eq!(tally.expected_cents, all_tips);
        prop_assert_eq!(tally.actual_cents, all_tips);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
