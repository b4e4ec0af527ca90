//! The buggy variant burns CPU that grows with the order and the fixed one
//! verifies the fix, on a real PostgreSQL; and nothing a learner reads
//! before asking for the solution gives the fix away.

use cpu_hotpath::SCENARIO;
use debuglab_harness::testing::{
    assert_fix_verified, assert_no_spoilers, assert_symptom_reproduced, metric, SharedReport,
};
use debuglab_harness::{Report, Scenario, Variant};

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
async fn buggy_quotes_cost_cpu_that_explodes_with_the_quantity() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    assert!(metric(report, "cpu_growth") >= 20.0, "{text}");
    assert!(report.summary.contains("ms of CPU"), "{text}");
    // The profile puts the large orders' time in the recursion.
    let profile = report
        .evidence
        .iter()
        .find(|line| line.starts_with("CPU profile of the large orders"));
    if let Some(profile) = profile {
        assert!(
            profile.contains("in `cpu_hotpath::buggy::cheapest`"),
            "{text}"
        );
    }
    // The answers are right: the bug is the cost.
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
    assert_eq!(metric(report, "stale_answers"), 0.0, "{text}");
}

#[tokio::test]
async fn fixed_quotes_cost_about_the_same_whatever_the_quantity() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(metric(report, "cpu_growth") <= 4.0, "{text}");
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
}

#[tokio::test]
async fn the_fix_cuts_the_cpu_of_a_large_quote_twenty_fold() {
    let (buggy, fixed) = (buggy().await, fixed().await);
    let (before, after) = (
        metric(buggy, "cpu_ms_per_quote_large"),
        metric(fixed, "cpu_ms_per_quote_large"),
    );
    assert!(
        before >= 20.0 * after,
        "CPU per large quote: buggy {before} ms, fixed {after} ms"
    );
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
