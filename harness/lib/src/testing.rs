//! Helpers for the tests of scenario crates.
//!
//! The tests of every scenario ask the same questions (does the buggy variant
//! reproduce its symptom? does the fix hold?), so the questions live here, with
//! failure messages that show the whole report.

use tokio::sync::MutexGuard;

use crate::postgres::{DatabaseTemplate, RunDatabase};
use crate::report::{Outcome, Report};
use crate::run::{run, take_turn, RunOptions};
use crate::scenario::{Scenario, Variant};

/// Runs `variant` of `scenario` with the options from the environment.
///
/// Panics with the harness's one-line error if the lab itself cannot run
/// (Docker down, image missing): that is a broken test set-up, not a verdict.
pub async fn run_variant(scenario: &'static dyn Scenario, variant: Variant) -> Report {
    let options = RunOptions::from_env().unwrap_or_else(|error| panic!("{error}"));
    match run(scenario, variant, &options).await {
        Ok(report) => report,
        Err(error) => panic!(
            "debuglab could not run {} ({variant}): {error}",
            scenario.info().id
        ),
    }
}

/// One variant's report, run once and shared by the tests of a test binary.
///
/// Reports are plain data, so sharing them across the tests' runtimes is
/// safe (unlike pools); each variant then runs once per binary, not per test.
///
/// ```ignore
/// static BUGGY: SharedReport = SharedReport::new();
/// let report = BUGGY.get(&SCENARIO, Variant::Buggy).await;
/// ```
pub struct SharedReport {
    cell: tokio::sync::OnceCell<Report>,
}

impl SharedReport {
    /// A report not run yet.
    pub const fn new() -> SharedReport {
        SharedReport {
            cell: tokio::sync::OnceCell::const_new(),
        }
    }

    /// The report of `variant`, running it on first use.
    pub async fn get(
        &'static self,
        scenario: &'static dyn Scenario,
        variant: Variant,
    ) -> &'static Report {
        self.cell
            .get_or_init(|| run_variant(scenario, variant))
            .await
    }
}

impl Default for SharedReport {
    fn default() -> Self {
        SharedReport::new()
    }
}

/// Asserts that a buggy variant's report shows the symptom.
pub fn assert_symptom_reproduced(report: &Report) {
    assert_eq!(
        report.outcome(),
        Outcome::SymptomReproduced,
        "expected the {} variant to reproduce the symptom, but the service was healthy:\n{}",
        report.variant,
        report.render_text(false)
    );
}

/// The metric `name` of `report`; panics with the whole report when the
/// run did not record it.
pub fn metric(report: &Report, name: &str) -> f64 {
    report
        .metric(name)
        .unwrap_or_else(|| panic!("no metric {name}:\n{}", report.render_text(false)))
}

/// Asserts that a fixed (or exercise) variant's report verifies the fix.
pub fn assert_fix_verified(report: &Report) {
    assert_eq!(
        report.outcome(),
        Outcome::FixVerified,
        "expected the {} variant to meet the objective, but it did not:\n{}",
        report.variant,
        report.render_text(false)
    );
}

/// Runs `scenario` — a scenario value carrying a candidate's code (a wrong
/// fix, another fix) — as the exercise, and returns its report, also
/// printed on stderr (shown with `--nocapture`, or when the test fails).
pub async fn judge_candidate<S: Scenario>(scenario: S) -> Report {
    // A run needs a scenario for the program's lifetime; a test makes a few.
    let scenario: &'static S = Box::leak(Box::new(scenario));
    let report = run_variant(scenario, Variant::Exercise).await;
    eprintln!("{}", report.render_text(false));
    report
}

/// Asserts that `report` is unhealthy and its summary says `why` (whatever
/// its case: the first problem of a summary starts with a capital).
pub fn assert_unhealthy_because(report: &Report, why: &str) {
    assert!(
        !report.healthy && report.summary.to_lowercase().contains(&why.to_lowercase()),
        "expected an unhealthy verdict saying {why:?}, got:\n{}",
        report.render_text(false)
    );
}

/// Asserts that a candidate which blocks its thread was stopped by the
/// run's watch and judged for it, instead of hanging the run.
pub fn assert_stopped_for_blocking(report: &Report) {
    assert_unhealthy_because(report, "blocked its worker thread");
    assert_unhealthy_because(report, "std::thread::sleep");
    assert!(
        report
            .evidence
            .iter()
            .any(|line| line.contains("the workload was stopped")),
        "the workload was not stopped:\n{}",
        report.render_text(false)
    );
}

/// Asserts that a report a learner sees before asking for help (summary,
/// metric names, evidence, series and plots) names none of the scenario's spoilers.
pub fn assert_no_spoilers(report: &Report, info: &crate::ScenarioInfo) {
    let mut text = report.render_text(false);
    let pictures = serde_json::json!({ "series": report.series.keys().collect::<Vec<_>>(), "plots": &report.plots });
    text.push_str(&pictures.to_string());
    let found = info.spoilers_in(&text);
    assert!(
        found.is_empty(),
        "the {} report gives the fix away ({found:?}):\n{text}",
        report.variant
    );
}

/// A database for a test that works outside a scenario run (a property test, say).
///
/// It holds the process's turn, like a run does, so that its queries never
/// disturb a run's timings. Call [`TestDatabase::close`] at the end; a
/// database left by a panicking test goes away with the container.
pub struct TestDatabase {
    /// The database.
    pub database: RunDatabase,
    _turn: MutexGuard<'static, ()>,
}

impl TestDatabase {
    /// A fresh database named after `label`, copied from `template` if given.
    pub async fn create(label: &str, template: Option<&'static DatabaseTemplate>) -> TestDatabase {
        let turn = take_turn().await;
        let server = crate::postgres::server()
            .await
            .unwrap_or_else(|error| panic!("debuglab could not start PostgreSQL: {error}"));
        let database = server
            .create_database(label, template)
            .await
            .unwrap_or_else(|error| panic!("debuglab could not create a test database: {error}"));
        TestDatabase {
            database,
            _turn: turn,
        }
    }

    /// Drops the database and gives the turn back.
    pub async fn close(self) {
        self.database.drop_database().await;
    }
}
