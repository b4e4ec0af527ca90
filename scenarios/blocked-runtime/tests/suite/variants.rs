//! The buggy variant stalls the lookups and the fixed one verifies the fix,
//! on a real Redis; and nothing a learner reads before asking for the
//! solution gives the fix away.

use blocked_runtime::workload::{login_attempt, MIN_LOGINS};
use blocked_runtime::{data, SCENARIO};
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
async fn buggy_logins_hold_the_workers_and_the_lookups_wait() {
    let report = buggy().await;
    assert_symptom_reproduced(report);
    let text = report.render_text(false);
    // Each login that checks a hash holds a worker for one long poll, a
    // check's CPU time long.
    assert!(
        metric(report, "service_long_polls") >= 0.5 * metric(report, "logins_hashed"),
        "{text}"
    );
    assert!(
        report
            .summary
            .contains("polls on the service's 2 worker threads"),
        "{text}"
    );
    assert!(
        metric(report, "service_held_per_login_ms")
            >= 0.5 * metric(report, "password_check_cpu_ms"),
        "{text}"
    );
    // The lookups' own work is unchanged; they wait for a worker.
    assert!(metric(report, "lookup_wait_to_poll_ms") > 0.5, "{text}");
    assert!(
        text.contains("the task with the longest polls: login"),
        "{text}"
    );
    // The hashing and the answers are right: the bug is where it runs.
    assert!(
        metric(report, "login_cpu_ms") >= 0.5 * metric(report, "password_check_cpu_ms"),
        "{text}"
    );
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
    // A request may fail: while both workers hash, a reply can wait for
    // one longer than the Redis client's response timeout (500 ms). That is
    // the bug too, and the report names it.
    if metric(report, "requests_failed") > 0.0 {
        assert!(report.summary.contains("that failed: "), "{text}");
    }
}

/// Attempts every run makes (the first [`MIN_LOGINS`]) with a known user's
/// right password.
fn right_passwords_every_run_tries() -> f64 {
    (0..MIN_LOGINS)
        .map(login_attempt)
        .filter(|typed| {
            (0..data::USERS).any(|user| {
                data::username(user) == typed.username && data::password(user) == typed.password
            })
        })
        .count() as f64
}

#[tokio::test]
async fn fixed_logins_keep_hashing_off_the_workers() {
    let report = fixed().await;
    assert_fix_verified(report);
    let text = report.render_text(false);
    assert!(
        metric(report, "service_long_polls") < 0.5 * metric(report, "logins_hashed"),
        "{text}"
    );
    assert!(
        metric(report, "service_held_per_login_ms") < 0.5 * metric(report, "password_check_cpu_ms"),
        "{text}"
    );
    assert!(
        metric(report, "login_cpu_ms") >= 0.5 * metric(report, "password_check_cpu_ms"),
        "{text}"
    );
    assert!(
        metric(report, "logins_accepted") >= right_passwords_every_run_tries(),
        "{text}"
    );
    assert_eq!(metric(report, "wrong_answers"), 0.0, "{text}");
}

#[tokio::test]
async fn the_buggy_report_gives_the_fix_away_nowhere() {
    // The files a learner reads first are checked for all scenarios in
    // harness/cli/tests/spoilers.rs; the report is checked here.
    assert_no_spoilers(buggy().await, SCENARIO.info());
}
