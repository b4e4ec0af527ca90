//! Replicas of the buggy service lose likes and tips in every run; the fixed
//! ones lose none — on real PostgreSQL and Redis, with replicas as separate
//! processes.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, run_variant, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use race_condition::workload::{CONCURRENCY, OPERATIONS_PER_REPLICA, REPLICAS};
use race_condition::SCENARIO;

static FIXED: SharedReport = SharedReport::new();

fn use_the_replica_program() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
}

async fn fixed() -> &'static Report {
    use_the_replica_program();
    FIXED.get(&SCENARIO, Variant::Fixed).await
}

const OPERATIONS: f64 = (REPLICAS as u64 * OPERATIONS_PER_REPLICA) as f64;

#[tokio::test]
async fn buggy_replicas_lose_likes_and_tips_in_every_run() {
    use_the_replica_program();
    for _ in 0..3 {
        let report = run_variant(&SCENARIO, Variant::Buggy).await;
        assert_symptom_reproduced(&report);
        let text = report.render_text(false);
        assert!(report.metric("missing_likes").unwrap() > 0.0, "{text}");
        assert!(report.metric("missing_tips").unwrap() > 0.0, "{text}");
        assert!(report.metric("missing_cents").unwrap() > 0.0, "{text}");
        // Missing, not failed: every operation was done and reported success,
        // and each remote service was called once per operation.
        assert_eq!(report.metric("likes_done"), Some(OPERATIONS), "{text}");
        assert_eq!(report.metric("tips_done"), Some(OPERATIONS), "{text}");
        assert_eq!(report.metric("failed_operations"), Some(0.0), "{text}");
        assert_eq!(report.metric("replica_failures"), Some(0.0), "{text}");
        assert_eq!(
            report.metric("notification_calls"),
            Some(OPERATIONS),
            "{text}"
        );
        assert_eq!(
            report.metric("fraud_check_calls"),
            Some(OPERATIONS),
            "{text}"
        );
        // The harness drove the replica processes, and all of them reported.
        assert_eq!(
            report.metric("requests_finished"),
            Some(REPLICAS as f64),
            "{text}"
        );
        // The replicas' threads were never judged blocked (a busy machine may
        // make a poll wait now and then; that is counted, not judged).
        assert!(
            !report.summary.contains("blocked its worker thread"),
            "{text}"
        );
        assert_no_spoilers(&report, SCENARIO.info());
    }
}

#[tokio::test]
async fn fixed_replicas_count_every_like_and_tip_exactly_once() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert_eq!(report.metric("missing_updates"), Some(0.0), "{text}");
    assert_eq!(report.metric("missing_cents"), Some(0.0), "{text}");
    assert_eq!(report.metric("likes_counted"), Some(OPERATIONS), "{text}");
    assert_eq!(report.metric("tips_counted"), Some(OPERATIONS), "{text}");
    assert_eq!(
        report.metric("notification_calls"),
        Some(OPERATIONS),
        "{text}"
    );
    assert_eq!(
        report.metric("fraud_check_calls"),
        Some(OPERATIONS),
        "{text}"
    );
    // The load the story needs: two processes, each with many operations in flight.
    assert!(report.metric("replicas").unwrap() >= 2.0, "{text}");
    assert!(
        report.metric("concurrency_per_replica").unwrap() >= CONCURRENCY as f64,
        "{text}"
    );
}

#[tokio::test]
async fn the_exercise_runs_only_from_its_own_program() {
    use_the_replica_program();
    let report = debuglab_harness::run(&SCENARIO, Variant::Exercise, &Default::default()).await;
    let error = report
        .expect_err("the library has no exercise to run")
        .to_string();
    assert!(error.contains("runs from its own binary"), "{error}");
}
