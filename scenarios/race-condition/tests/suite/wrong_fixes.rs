//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.
//!
//! The candidates live in `candidates.rs`, which the replica program
//! (`race-condition-replica`) includes too: it runs them in its processes.

use crate::*;

use crate::candidates;

use debuglab_harness::testing::{assert_fix_verified, assert_unhealthy_because, judge_candidate};
use debuglab_harness::Report;

/// Runs the candidate called `name` (a module of `candidates.rs`) as the
/// exercise, in replica processes, and returns its report.
async fn judge(name: &str) -> Report {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_race-condition-replica"), &[]);
    let code = candidates::ALL
        .iter()
        .find(|code| code.name == name)
        .copied()
        .unwrap_or_else(|| panic!("no candidate called {name}"));
    judge_candidate(RaceCondition::with_candidate(code)).await
}

/// Asserts every operation was done and reported: the run judged the
/// candidate's results, not a run that fell over.
fn assert_all_done(report: &Report) {
    let text = report.render_text(false);
    assert_eq!(report.metric("likes_done"), Some(1200.0), "{text}");
    assert_eq!(report.metric("tips_done"), Some(1200.0), "{text}");
    assert_eq!(report.metric("failed_operations"), Some(0.0), "{text}");
    assert_eq!(report.metric("replica_failures"), Some(0.0), "{text}");
}

#[tokio::test]
async fn a_lock_inside_one_process_does_not_hold_across_replicas() {
    let report = judge("process_lock").await;
    assert_all_done(&report);
    assert_unhealthy_because(&report, "likes are missing: likes:1 = ");
    assert_unhealthy_because(&report, "whichever replica handles it");
    assert_unhealthy_because(&report, "tips are missing: wallet 1 has tips_received = ");
    assert_unhealthy_because(&report, "cents tipped are missing from wallet 1");
}

#[tokio::test]
async fn reading_after_the_remote_call_still_loses_updates() {
    let report = judge("narrows_the_window").await;
    assert_all_done(&report);
    assert_unhealthy_because(&report, "likes are missing: likes:1 = ");
    assert_unhealthy_because(&report, "tips are missing: wallet 1 has tips_received = ");
}

#[tokio::test]
async fn skipping_the_remote_calls_is_not_a_fix() {
    let report = judge("skips_the_remote_calls").await;
    assert_all_done(&report);
    assert_unhealthy_because(
        &report,
        "the notification service was called 0 times for 1200 successful likes: every like must notify the author, exactly once",
    );
    assert_unhealthy_because(
        &report,
        "the fraud check was called 0 times for 1200 successful tips",
    );
}

#[tokio::test]
async fn a_lock_checked_then_taken_is_no_lock() {
    let report = judge("home_made_lock").await;
    assert_all_done(&report);
    assert_unhealthy_because(&report, "likes are missing: likes:1 = ");
    assert_unhealthy_because(&report, "tips are missing: wallet 1 has tips_received = ");
}

#[tokio::test]
async fn shrinking_the_pool_from_inside_is_not_a_fix() {
    let report = judge("one_connection_at_a_time").await;
    assert_all_done(&report);
    assert_unhealthy_because(
        &report,
        "Redis pool was resized from 8 to 1 connections during the run",
    );
    // One connection serialises one replica, not the two.
    assert_unhealthy_because(&report, "likes are missing: likes:1 = ");
}

#[tokio::test]
async fn retrying_the_remote_call_with_the_write_is_not_a_fix() {
    let report = judge("repeats_the_remote_call").await;
    assert_all_done(&report);
    // The counts are right; the authors got several notifications per like.
    assert_eq!(report.metric("missing_updates"), Some(0.0));
    assert_eq!(report.metric("missing_cents"), Some(0.0));
    assert_unhealthy_because(&report, "authors were notified more than once for a like — a retried like must not repeat the remote call");
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge("blocks_its_thread").await;
    assert_unhealthy_because(&report, "blocked its worker thread");
    assert_unhealthy_because(&report, "std::thread::sleep");
    // Each replica's watch stopped its workload: few operations were done.
    assert_unhealthy_because(&report, "the workload was stopped");
    assert!(
        report.metric("likes_done").unwrap() < 100.0,
        "{}",
        report.render_text(false)
    );
}

#[tokio::test]
async fn optimistic_retries_and_a_row_lock_are_another_correct_fix() {
    let report = judge("optimistic_and_row_lock").await;
    assert_fix_verified(&report);
    assert_all_done(&report);
}

#[tokio::test]
async fn a_script_and_serializable_retries_are_another_correct_fix() {
    let report = judge("script_and_serializable").await;
    assert_fix_verified(&report);
    assert_all_done(&report);
}
