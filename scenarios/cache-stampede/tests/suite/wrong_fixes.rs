//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.
//!
//! The candidates live in `candidates.rs`, which the replica program
//! (`cache-stampede-replica`) includes too: it runs them in its processes.

use debuglab_harness::testing::{
    assert_fix_verified, assert_unhealthy_because, judge_candidate, metric,
};
use debuglab_harness::Report;

use crate::{candidates, use_replica_program, CacheStampede};

/// Runs the candidate called `name` (a module of `candidates.rs`) as the
/// exercise, in replica processes, and returns its report.
async fn judge(name: &str) -> Report {
    use_replica_program();
    let code = candidates::ALL
        .iter()
        .find(|code| code.name == name)
        .copied()
        .unwrap_or_else(|| panic!("no candidate called {name}"));
    judge_candidate(CacheStampede::with_candidate(code)).await
}

/// The count of a stampede: too many computations per expiry.
const TOO_MANY: &str = "computations per expiry, up to";
const BOUND: &str = "an expiry must cost the database at most 2 computations, however many shoppers and replicas ask";
/// Computations that ran at the same time, by the server log.
const AT_ONCE: &str = "repeated work under way or just done, whose report was fresh; on average a wave may hold at most 1.5 computations, however many shoppers and replicas ask";

#[tokio::test]
async fn a_report_that_never_expires_never_follows_the_data() {
    let report = judge("never_expires").await;
    assert_unhealthy_because(
        &report,
        "once the TTL had passed since the last replica stopped",
    );
    assert_unhealthy_because(
        &report,
        "still got the report without them: the report must follow the order lines within its TTL — a report that never expires never stampedes, but never changes either",
    );
    assert_eq!(metric(&report, "stale_after_traffic"), 1.0);
}

#[tokio::test]
async fn a_jittered_ttl_still_expires_for_everyone_at_once() {
    let report = judge("jittered_ttl").await;
    assert_unhealthy_because(&report, TOO_MANY);
    assert_unhealthy_because(&report, AT_ONCE);
    assert_unhealthy_because(&report, BOUND);
    assert_eq!(metric(&report, "stale_after_traffic"), 0.0);
}

#[tokio::test]
async fn a_lock_inside_one_process_does_not_reach_the_other_replicas() {
    let report = judge("process_lock").await;
    // Judged by which computations ran at the same time, which a busy
    // machine does not change (per expiry, it may be near the bound).
    assert_unhealthy_because(&report, AT_ONCE);
    assert_unhealthy_because(
        &report,
        "about one per replica process each time: whatever makes callers wait for each other must reach across the 4 replica processes, which share nothing but PostgreSQL and Redis",
    );
    // One computation per replica at the most.
    let most = metric(&report, "most_computations_at_once");
    assert!((2.0..=4.0).contains(&most), "{}", report.render_text(false));
}

#[tokio::test]
async fn turning_waiting_callers_away_is_not_a_fix() {
    let report = judge("busy_callers_fail").await;
    assert_unhealthy_because(
        &report,
        "requests failed (first: busy: the report is being computed, try again shortly): every shopper must get the report, those who ask while it is being computed too",
    );
}

#[tokio::test]
async fn callers_that_take_turns_still_compute_once_each() {
    let report = judge("takes_turns").await;
    assert_unhealthy_because(&report, TOO_MANY);
    assert_unhealthy_because(&report, BOUND);
}

#[tokio::test]
async fn a_blocking_wait_is_stopped_and_judged() {
    let report = judge("blocks_its_thread").await;
    assert_unhealthy_because(&report, "blocked its worker thread");
    assert_unhealthy_because(&report, "std::thread::sleep");
    // Each replica's watch stopped its shoppers.
    assert_unhealthy_because(&report, "the workload was stopped");
}

#[tokio::test]
async fn refreshing_early_while_serving_the_old_report_is_another_correct_fix() {
    let report = judge("early_refresh").await;
    assert_fix_verified(&report);
    assert_eq!(metric(&report, "failed_requests"), 0.0);
    assert_eq!(metric(&report, "most_computations_at_once"), 1.0);
}

#[tokio::test]
async fn an_advisory_lock_in_postgresql_is_another_correct_fix() {
    let report = judge("advisory_lock").await;
    assert_fix_verified(&report);
    assert_eq!(metric(&report, "failed_requests"), 0.0);
    assert_eq!(metric(&report, "most_computations_at_once"), 1.0);
}
