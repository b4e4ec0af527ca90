//! For random tips, concurrency levels and replica counts, the fixed replicas
//! end at exactly the sum of what they did: nothing lost, nothing applied twice.

use std::time::Duration;

use debuglab_harness::testing::TestDatabase;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use race_condition::workload::simulate;
use race_condition::{tip_cents, Plan, BASE_MIGRATIONS};

#[test]
fn fixed_replicas_end_at_exactly_the_sum() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let plans = (2usize..=3, 1usize..=24, 1u64..=60, any::<u64>()).prop_map(
        |(replicas, concurrency, operations_per_replica, seed)| Plan {
            replicas,
            concurrency,
            operations_per_replica,
            seed,
            rate: 0,
        },
    );
    let result = runner.run(&plans, |plan| {
        let (figures, _) = runtime.block_on(async {
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
            let simulated = simulate(
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
            simulated
        });
        prop_assert!(
            figures.replica_failures.is_empty(),
            "{:?}",
            figures.replica_failures
        );
        let operations = plan.operations();
        let all_tips: i64 = (0..plan.replicas)
            .flat_map(|replica| {
                (0..plan.operations_per_replica)
                    .map(move |index| tip_cents(plan.seed, replica, index))
            })
            .sum();
        // Every operation succeeded, and the stores hold exactly their sum.
        prop_assert_eq!(figures.done.likes, operations);
        prop_assert_eq!(figures.done.tips, operations);
        prop_assert_eq!(figures.done.cents, all_tips);
        prop_assert_eq!(figures.stores.likes, operations as i64);
        prop_assert_eq!(figures.stores.tips, operations as i64);
        prop_assert_eq!(figures.stores.cents, all_tips);
        prop_assert_eq!(figures.calls.notifications, operations);
        prop_assert_eq!(figures.calls.fraud_checks, operations);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
