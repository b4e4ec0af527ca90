//! Replicas of the buggy service lose updates in every run; the fixed ones
//! lose none — on real PostgreSQL and Redis, with replicas as separate processes.

use debuglab_harness::testing::{assert_fix_verified, assert_symptom_reproduced, run_variant};
use debuglab_harness::Variant;
use race_condition::SCENARIO;

fn use_the_replica_binary() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
}

#[tokio::test]
async fn buggy_replicas_lose_updates_in_every_run() {
    use_the_replica_binary();
    for _ in 0..3 {
        let report = run_variant(&SCENARIO, Variant::Buggy).await;
        assert_symptom_reproduced(&report);
        let text = report.render_text(false);
        assert!(report.metric("lost_likes").unwrap() > 0.0, "{text}");
        assert!(report.metric("lost_tips").unwrap() > 0.0, "{text}");
        assert!(report.metric("lost_updates").unwrap() > 0.0, "{text}");
        // Lost, not failed: every operation reported success.
        assert_eq!(report.metric("errors"), Some(0.0), "{text}");
        assert_eq!(report.metric("replica_failures"), Some(0.0), "{text}");
    }
}

#[tokio::test]
async fn fixed_replicas_count_every_update_exactly_once() {
    use_the_replica_binary();
    let report = run_variant(&SCENARIO, Variant::Fixed).await;
    assert_fix_verified(&report);
    let text = report.render_text(false);
    assert_eq!(report.metric("lost_updates"), Some(0.0), "{text}");
    assert_eq!(report.metric("lost_cents"), Some(0.0), "{text}");
    // The load the issue asks for: at least 1000 increments, 16 at a time, 2 replicas.
    assert!(report.metric("expected_likes").unwrap() >= 1000.0, "{text}");
    assert!(report.metric("expected_tips").unwrap() >= 1000.0, "{text}");
    assert!(
        report.metric("concurrency_per_replica").unwrap() >= 16.0,
        "{text}"
    );
    assert!(report.metric("replicas").unwrap() >= 2.0, "{text}");
}

/// Runs the standard plan with the code called `code` and returns its tally.
async fn tally_of(code: &str) -> race_condition::Tally {
    use debuglab_harness::testing::TestDatabase;
    use_the_replica_binary();
    let test_db = TestDatabase::create("race_condition_alternatives", None).await;
    test_db
        .database
        .migrate(&race_condition::BASE_MIGRATIONS, &[])
        .await
        .unwrap();
    let redis = debuglab_harness::redis::server()
        .await
        .unwrap()
        .lease_database()
        .await
        .unwrap();
    let plan = race_condition::standard_plan(7);
    let tally = race_condition::simulate(
        &test_db.database,
        &redis,
        code,
        plan,
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    redis.release().await;
    test_db.close().await;
    assert!(
        tally.replica_failures.is_empty(),
        "{code}: {:?}",
        tally.replica_failures
    );
    tally
}

#[tokio::test]
async fn a_lock_inside_one_process_does_not_fix_replicas() {
    let tally = tally_of("process-lock").await;
    assert!(
        tally.actual_likes < tally.expected_likes && tally.actual_tips < tally.expected_tips,
        "a process-local Mutex should still lose updates between replicas: {tally:?}"
    );
}

#[tokio::test]
async fn other_correct_fixes_lose_nothing_either() {
    for code in ["watch-and-row-lock", "script-and-serializable"] {
        let tally = tally_of(code).await;
        assert_eq!(
            (tally.actual_likes, tally.actual_tips),
            (1200, 1200),
            "{code}: {tally:?}"
        );
        assert_eq!(
            tally.actual_cents, tally.expected_cents,
            "{code}: {tally:?}"
        );
    }
}
