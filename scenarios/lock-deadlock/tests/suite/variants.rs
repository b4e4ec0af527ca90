//! The buggy variant reproduces the deadlocks and the fixed one verifies the
//! fix, on a real PostgreSQL; and nothing a learner reads before asking for
//! the solution gives the fix away.

use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};
use lock_deadlock::SCENARIO;

// Each variant runs once; its report is shared by the tests below.
static BUGGY: SharedReport = SharedReport::new();
static FIXED: SharedReport = SharedReport::new();

async fn buggy() -> &'static Report {
    BUGGY.get(&SCENARIO, Variant::Buggy).await
}

async fn fixed() -> &'static Report {
    FIXED.get(&SCENARIO, Variant::Fixed).await
}

#[tokio::test]
async fn buggy_transfers_deadlock_and_the_server_counts_every_one() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    let deadlocks = metric(report, "deadlocks");
    assert!(deadlocks >= 5.0, "{text}");
    // Every deadlock the server broke is a transfer a client was told failed.
    assert_eq!(metric(report, "deadlock_errors"), deadlocks, "{text}");
    assert_eq!(metric(report, "transfers_failed"), deadlocks, "{text}");
    assert!(
        report.summary.contains("deadlocks in the run's database"),
        "{text}"
    );
    // The server's report names the two statements that waited for each other.
    let log = report
        .evidence
        .iter()
        .position(|line| line.contains("deadlock reports"));
    if let Some(log) = log {
        let report_lines = &report.evidence[log..];
        assert!(
            report_lines
                .iter()
                .any(|line| line.contains("deadlock detected")),
            "{text}"
        );
        let statements = report_lines
            .iter()
            .take(8)
            .filter(|line| line.contains("UPDATE accounts"))
            .count();
        assert!(statements >= 2, "{text}");
    } else {
        assert!(text.contains("log cannot be read"), "{text}");
    }
    // Locks waited while the transfers ran, and the money stayed whole: an
    // aborted transfer rolls back.
    assert!(metric(report, "lock_waiters_max") >= 1.0, "{text}");
    assert_eq!(metric(report, "money_drift_cents"), 0.0, "{text}");
    assert_eq!(metric(report, "money_drift_max_cents"), 0.0, "{text}");
    assert_eq!(metric(report, "ledger_mismatches"), 0.0, "{text}");
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
}

#[tokio::test]
async fn fixed_transfers_never_deadlock_and_still_run_side_by_side() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert_eq!(metric(report, "deadlocks"), 0.0, "{text}");
    assert_eq!(metric(report, "transfers_failed"), 0.0, "{text}");
    assert_eq!(metric(report, "ledger_mismatches"), 0.0, "{text}");
    assert_eq!(metric(report, "money_drift_max_cents"), 0.0, "{text}");
    assert!(metric(report, "transfers_refused") >= 1.0, "{text}");
    assert!(metric(report, "open_transfers_median") >= 2.0, "{text}");
    // Transfers on the same accounts queue up: the locks are still there.
    assert!(metric(report, "lock_waiters_max") >= 1.0, "{text}");
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    // The files a learner reads first are checked for all scenarios in
    // harness/cli/tests/spoilers.rs; the report is checked here.
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
