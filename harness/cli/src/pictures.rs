//! The pictures of runs: `debuglab compare`, and the HTML pages that
//! `run --html` and `lab --html` write (drawn by `debuglab-pictures`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use debuglab_harness::{Report, RunOptions, Scenario, ScenarioInfo, Variant};
use debuglab_pictures::page::{self, IndexEntry};

use crate::exercise::{ExerciseCode, ExerciseProgram};
use crate::{learner, state, table};

/// Where pages go unless told otherwise: `<state dir>/reports`.
pub fn reports_dir() -> PathBuf {
    state::state_dir().join("reports")
}

/// Where a page goes: `path`, or `default_name` in [`reports_dir`] when
/// none is given (`--html` without a value). Its directory is made now, so
/// that a path that cannot be written fails before a run, not after.
pub fn destination(path: Option<&Path>, default_name: &str) -> anyhow::Result<PathBuf> {
    let path = path.map_or_else(|| reports_dir().join(default_name), Path::to_owned);
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    Ok(path)
}

/// Where `run --html` writes the page of `info`'s `variant`.
pub fn report_destination(
    info: &ScenarioInfo,
    variant: Variant,
    path: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    destination(path, &format!("{}-{variant}.html", info.id))
}

/// Where `lab --html` writes its index: in `dir`, or in [`reports_dir`];
/// the comparison pages go beside it.
pub fn lab_index(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    destination(
        dir.map(|dir| dir.join("index.html")).as_deref(),
        "index.html",
    )
}

/// Writes `html` to `path` (a [`destination`]); returns it.
fn write(path: &Path, html: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_owned())
}

/// Writes one run's page to `path`, a [`report_destination`].
pub fn write_report(info: &ScenarioInfo, report: &Report, path: &Path) -> anyhow::Result<PathBuf> {
    write(path, &page::report_page(info, report)?)
}

/// Tells the user where a page is: on stdout after a text report, on stderr
/// when stdout carries JSON.
pub fn say_written(what: &str, path: &Path, json: bool) {
    let line = format!("{what}: {}", path.display());
    if json {
        eprintln!("{line}");
    } else {
        println!("\n{line}");
    }
}

/// `debuglab compare`: runs `with` (buggy or the exercise) and fixed with one
/// seed, prints their key figures side by side and writes the comparison page.
pub async fn compare(
    scenario: &'static dyn Scenario,
    with: Variant,
    seed: Option<u64>,
    html: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let info = scenario.info();
    let default_name = format!("{}-compare.html", info.id);
    let path = destination(html.as_deref(), &default_name)?;
    let mut options = RunOptions::from_env()?;
    // One seed for both runs, so that they face the same workload.
    let seed = seed
        .or(options.seed)
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    options.seed = Some(seed);
    let left = run_one(scenario, with, &options).await?;
    let right = debuglab_harness::run(scenario, Variant::Fixed, &options).await?;
    let path = write(&path, &page::comparison_page(info, &left, &right)?)?;
    if json {
        let both = serde_json::json!({ "seed": seed, "reports": [&left, &right], "html": path });
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        print_comparison(info, &left, &right);
    }
    say_written("comparison page", &path, json);
    Ok(ExitCode::SUCCESS)
}

/// One run of `variant`; the exercise runs as its own program and counts as progress.
async fn run_one(
    scenario: &'static dyn Scenario,
    variant: Variant,
    options: &RunOptions,
) -> anyhow::Result<Report> {
    if variant != Variant::Exercise {
        return Ok(debuglab_harness::run(scenario, variant, options).await?);
    }
    let code = ExerciseCode::from_env()?;
    let program = ExerciseProgram::prepare(scenario.info().id, code).await?;
    let output = program.run(options.seed, false).await?;
    learner::record_run(&output.report, code)?;
    Ok(output.report)
}

/// The two runs' outcomes and key figures as a table.
fn print_comparison(info: &ScenarioInfo, left: &Report, right: &Report) {
    let mut rows = vec![
        vec![
            "outcome".to_owned(),
            left.outcome().label().to_owned(),
            right.outcome().label().to_owned(),
        ],
        vec![
            "time".to_owned(),
            format!("{:.1} s", left.duration_ms as f64 / 1000.0),
            format!("{:.1} s", right.duration_ms as f64 / 1000.0),
        ],
    ];
    for name in info.key_metrics {
        let value = |report: &Report| {
            report
                .metric(name)
                .map_or_else(|| "–".to_owned(), debuglab_harness::report::format_number)
        };
        rows.push(vec![(*name).to_owned(), value(left), value(right)]);
    }
    println!("{} — {} and {}\n", info.title, left.variant, right.variant);
    table::print(&["", left.variant.id(), right.variant.id()], &rows, &[1, 2]);
    println!("\n{} ({}): {}", info.id, left.variant, left.summary);
}

/// `lab --html`: every scenario's comparison page and, at `index` (a
/// [`lab_index`]), an index linking them; returns the index's path.
pub fn write_lab(index: &Path, reports: &[Report]) -> anyhow::Result<PathBuf> {
    let dir = index.parent().unwrap_or(Path::new(""));
    let mut entries = Vec::new();
    for scenario in crate::scenarios::all() {
        let info = scenario.info();
        let of = |variant| {
            reports
                .iter()
                .find(|report| report.scenario == info.id && report.variant == variant)
        };
        let (Some(buggy), Some(fixed)) = (of(Variant::Buggy), of(Variant::Fixed)) else {
            continue;
        };
        let name = format!("{}-compare.html", info.id);
        write(
            &dir.join(&name),
            &page::comparison_page(info, buggy, fixed)?,
        )?;
        entries.push(IndexEntry {
            info,
            reports: [buggy, fixed],
            href: name,
        });
    }
    write(index, &page::index_page(&entries))
}
