//! `debuglab lab` and `debuglab bench`: every scenario, buggy and fixed.

use std::path::PathBuf;

use debuglab_harness::report::format_number;
use debuglab_harness::stats::median;
use debuglab_harness::{Report, RunOptions, Scenario, Variant};
use serde::Serialize;

use crate::{scenarios, table};

/// Runs every scenario's buggy and fixed variants and prints a table (or the
/// reports as JSON), and with `html` writes their comparison pages and an
/// index (in the directory it names, or the default place). Returns whether every variant behaved as it should.
pub async fn lab(json: bool, html: Option<Option<PathBuf>>) -> anyhow::Result<bool> {
    let options = RunOptions::from_env()?;
    // Where the pages go is settled first: a bad path fails before the runs.
    let index = html
        .map(|dir| crate::pictures::lab_index(dir.as_deref()))
        .transpose()?;
    let mut reports = Vec::new();
    for scenario in scenarios::all() {
        for variant in [Variant::Buggy, Variant::Fixed] {
            reports.push(debuglab_harness::run(scenario, variant, &options).await?);
        }
    }
    let all_as_expected = reports.iter().all(|report| report.outcome().as_expected());
    let index = index
        .map(|index| crate::pictures::write_lab(&index, &reports))
        .transpose()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        if let Some(index) = &index {
            crate::pictures::say_written("comparison pages", index, true);
        }
        return Ok(all_as_expected);
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|report| {
            let signal = signal_metric(&report.scenario);
            vec![
                report.scenario.clone(),
                report.variant.to_string(),
                if report.healthy {
                    "healthy"
                } else {
                    "unhealthy"
                }
                .to_owned(),
                report.outcome().label().to_owned(),
                format!("{:.1} s", report.duration_ms as f64 / 1000.0),
                report.metric(signal).map_or_else(
                    || "-".to_owned(),
                    |value| format!("{signal} {}", format_number(value)),
                ),
            ]
        })
        .collect();
    table::print(
        &[
            "scenario", "variant", "verdict", "outcome", "time", "signal",
        ],
        &rows,
        &[4],
    );
    println!();
    for report in reports.iter().filter(|report| summary_shown(report)) {
        println!(
            "{} ({}): {}",
            report.scenario, report.variant, report.summary
        );
    }
    println!(
        "\n(A verified fix's report shows the fix at work, so it is left out here; \
         `debuglab run <id> --variant fixed` shows it.)\n"
    );
    if all_as_expected {
        println!("every buggy variant reproduced its symptom and every fix was verified");
    } else {
        println!("some variants did not behave as expected: see the outcome column");
    }
    if let Some(index) = &index {
        crate::pictures::say_written("comparison pages", index, false);
    }
    Ok(all_as_expected)
}

/// Whether the lab prints `report`'s summary: the symptom of every buggy
/// run, and whatever did not go as expected. A verified fix's summary names
/// the fix (slow-query's names its index), and `make lab` is a learner's
/// first command.
fn summary_shown(report: &Report) -> bool {
    report.variant == Variant::Buggy || !report.outcome().as_expected()
}

/// One scenario's figures in `debuglab bench`.
#[derive(Debug, Serialize)]
struct BenchRow {
    scenario: &'static str,
    runs: u32,
    /// The warm-up run: starting containers and seeding included.
    first_run_ms: u64,
    buggy_median_ms: f64,
    fixed_median_ms: f64,
    signal_metric: &'static str,
    buggy_signal: f64,
    fixed_signal: f64,
    /// How far apart buggy and fixed are on the signal metric; `None` when
    /// one side is zero (the ratio is unbounded: the best case).
    signal_ratio: Option<f64>,
    /// Runs whose outcome was not the expected one (should be 0).
    unexpected_outcomes: usize,
}

/// Times every scenario's verdict over `runs` runs per variant and prints medians.
pub async fn bench(runs: u32, json: bool) -> anyhow::Result<()> {
    let options = RunOptions::from_env()?;
    let mut rows = Vec::new();
    for scenario in scenarios::all() {
        rows.push(bench_scenario(scenario, runs, &options).await?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.scenario.to_owned(),
                row.runs.to_string(),
                format!("{:.2} s", row.first_run_ms as f64 / 1000.0),
                format!("{:.2} s", row.buggy_median_ms / 1000.0),
                format!("{:.2} s", row.fixed_median_ms / 1000.0),
                format!(
                    "{} {} / {}",
                    row.signal_metric,
                    format_number(round(row.buggy_signal)),
                    format_number(round(row.fixed_signal))
                ),
                row.signal_ratio.map_or_else(
                    || "∞ (one side 0)".to_owned(),
                    |ratio| format!("{ratio:.0}x"),
                ),
                row.unexpected_outcomes.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "scenario",
            "runs",
            "first run",
            "buggy (median)",
            "fixed (median)",
            "signal buggy / fixed",
            "ratio",
            "unexpected",
        ],
        &table,
        &[1, 2, 3, 4, 6, 7],
    );
    Ok(())
}

async fn bench_scenario(
    scenario: &'static dyn Scenario,
    runs: u32,
    options: &RunOptions,
) -> anyhow::Result<BenchRow> {
    let info = scenario.info();
    let first = debuglab_harness::run(scenario, Variant::Fixed, options).await?;
    let mut unexpected = usize::from(!first.outcome().as_expected());
    let mut timed = |reports: &[Report]| -> (f64, f64) {
        unexpected += reports
            .iter()
            .filter(|report| !report.outcome().as_expected())
            .count();
        let durations: Vec<f64> = reports
            .iter()
            .map(|report| report.duration_ms as f64)
            .collect();
        let signals: Vec<f64> = reports
            .iter()
            .filter_map(|report| report.metric(info.signal_metric))
            .collect();
        (
            median(&durations).unwrap_or(f64::NAN),
            median(&signals).unwrap_or(f64::NAN),
        )
    };
    let mut buggy = Vec::new();
    let mut fixed = Vec::new();
    for _ in 0..runs {
        buggy.push(debuglab_harness::run(scenario, Variant::Buggy, options).await?);
        fixed.push(debuglab_harness::run(scenario, Variant::Fixed, options).await?);
    }
    let (buggy_median_ms, buggy_signal) = timed(&buggy);
    let (fixed_median_ms, fixed_signal) = timed(&fixed);
    Ok(BenchRow {
        scenario: info.id,
        runs,
        first_run_ms: first.duration_ms,
        buggy_median_ms,
        fixed_median_ms,
        signal_metric: info.signal_metric,
        buggy_signal,
        fixed_signal,
        signal_ratio: signal_ratio(buggy_signal, fixed_signal),
        unexpected_outcomes: unexpected,
    })
}

/// The larger of the two signals over the smaller: how clearly they differ.
fn signal_ratio(buggy: f64, fixed: f64) -> Option<f64> {
    let (high, low) = if buggy.abs() >= fixed.abs() {
        (buggy.abs(), fixed.abs())
    } else {
        (fixed.abs(), buggy.abs())
    };
    (low > 0.0).then(|| high / low)
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn signal_metric(scenario: &str) -> &'static str {
    scenarios::find(scenario).map_or("", |scenario| scenario.info().signal_metric)
}

/// One scenario's outcome in `debuglab stress`.
#[derive(Debug, Serialize)]
struct StressRow {
    scenario: &'static str,
    runs: u32,
    /// Runs of the fixed variant judged unhealthy (should be 0).
    unexpected_outcomes: usize,
    /// The summary of the first unexpected outcome.
    first_unexpected: Option<String>,
}

/// `debuglab stress`: every fixed variant `runs` times while `load` busy-loop
/// processes compete for the CPU; exits 1 if any was judged unhealthy.
pub async fn stress(runs: u32, load: u32, json: bool) -> anyhow::Result<std::process::ExitCode> {
    let options = RunOptions::from_env()?;
    let spinners = BusyLoops::start(load)?;
    let mut rows = Vec::new();
    for scenario in scenarios::all() {
        let mut row = StressRow {
            scenario: scenario.info().id,
            runs,
            unexpected_outcomes: 0,
            first_unexpected: None,
        };
        for _ in 0..runs {
            let report = debuglab_harness::run(scenario, Variant::Fixed, &options).await?;
            if !report.outcome().as_expected() {
                row.unexpected_outcomes += 1;
                row.first_unexpected.get_or_insert(report.summary);
            }
        }
        rows.push(row);
    }
    drop(spinners);
    let unexpected: usize = rows.iter().map(|row| row.unexpected_outcomes).sum();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                vec![
                    row.scenario.to_owned(),
                    row.runs.to_string(),
                    row.unexpected_outcomes.to_string(),
                    row.first_unexpected.clone().unwrap_or_default(),
                ]
            })
            .collect();
        println!("fixed variants under {load} busy-loop processes:\n");
        table::print(
            &["scenario", "runs", "unexpected", "first unexpected verdict"],
            &table,
            &[1, 2],
        );
    }
    Ok(if unexpected == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// Busy-loop processes (`debuglab __spin`), killed when dropped; each also
/// ends by itself after an hour, so none outlives a killed `stress`.
struct BusyLoops(Vec<std::process::Child>);

impl BusyLoops {
    fn start(count: u32) -> anyhow::Result<BusyLoops> {
        let program = std::env::current_exe()?;
        let children = (0..count)
            .map(|_| {
                std::process::Command::new(&program)
                    .args(["__spin", "--seconds", "3600"])
                    .stdin(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(BusyLoops(children))
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `debuglab __spin`: keeps one CPU busy for `seconds`, or until its parent dies.
pub fn spin(seconds: u64) -> std::process::ExitCode {
    let parent = std::os::unix::process::parent_id();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut counter: u64 = 0;
    while std::time::Instant::now() < until {
        for _ in 0..10_000_000 {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
        if std::os::unix::process::parent_id() != parent {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(variant: Variant, healthy: bool) -> Report {
        Report {
            scenario: "slow-query".to_owned(),
            variant,
            healthy,
            duration_ms: 1,
            summary: String::new(),
            metrics: Default::default(),
            evidence: Vec::new(),
            series: Default::default(),
            plots: Vec::new(),
        }
    }

    #[test]
    fn the_lab_shows_symptoms_and_surprises_but_no_verified_fix() {
        assert!(summary_shown(&report(Variant::Buggy, false)));
        assert!(summary_shown(&report(Variant::Buggy, true)));
        assert!(summary_shown(&report(Variant::Fixed, false)));
        assert!(!summary_shown(&report(Variant::Fixed, true)));
    }
}
