//! The learner's loop: run and check an exercise, ask for hints or the
//! solution, reset it, see progress, re-check on every save.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use debuglab_harness::runner::RunOutput;
use debuglab_harness::{Kept, Report, Scenario, Variant};

use crate::exercise::{ExerciseCode, ExerciseProgram};
use crate::scenarios;
use crate::state::{self, State, Status};

/// Records what an exercise run showed about the learner's progress; runs
/// of anything but the learner's own code are not progress.
pub fn record_run(report: &Report, code: ExerciseCode) -> anyhow::Result<()> {
    if report.variant != Variant::Exercise || code != ExerciseCode::Yours {
        return Ok(());
    }
    State::update(&report.scenario, |progress| {
        if report.healthy {
            progress.fixed = true;
        } else {
            progress.symptom_seen = true;
            progress.fixed = false;
        }
    })?;
    Ok(())
}

/// Builds and runs scenario `id`'s exercise once; records progress.
pub async fn run_exercise(id: &str, seed: Option<u64>, keep: bool) -> anyhow::Result<RunOutput> {
    let code = ExerciseCode::from_env()?;
    let output = ExerciseProgram::prepare(id, code)
        .await?
        .run(seed, keep)
        .await?;
    record_run(&output.report, code)?;
    Ok(output)
}

/// `debuglab check <id>`: runs the exercise and says in a line or two whether it is fixed.
pub async fn check(scenario: &'static dyn Scenario, json: bool) -> anyhow::Result<ExitCode> {
    let id = scenario.info().id;
    let report = run_exercise(id, None, false).await?.report;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.healthy {
        println!("✓ {id}: fixed. {}", report.summary);
        println!(
            "  The cargo check agrees: cargo test -p {id} --features exercise --test exercise"
        );
    } else {
        println!("✗ {id}: not fixed yet. {}", report.summary);
        println!(
            "  Evidence: {}   Hint: {}",
            state::command(&format!("run {id}")),
            state::command(&format!("hint {id}"))
        );
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `debuglab hint <id>`: the next hint, remembering which were shown.
pub fn hint(scenario: &'static dyn Scenario) -> anyhow::Result<()> {
    let info = scenario.info();
    let hints = info.hints();
    anyhow::ensure!(!hints.is_empty(), "scenario {} has no hints", info.id);
    let shown = State::load()?.of(info.id).hints_shown;
    let next = shown.min(hints.len() - 1);
    println!("Hint {} of {} for {}:\n", next + 1, hints.len(), info.id);
    println!("{}", hints[next]);
    if next + 1 < hints.len() {
        println!(
            "\n(`{}` again for a more explicit one)",
            state::command(&format!("hint {}", info.id))
        );
    } else {
        println!(
            "\n(that was the last hint; `{}` explains the bug and shows the reference fix)",
            state::command(&format!("solution {}", info.id))
        );
    }
    State::update(info.id, |progress| {
        progress.hints_shown = (next + 1).max(progress.hints_shown)
    })?;
    Ok(())
}

/// `debuglab solution <id>`: the diagnosis, the fix explained, and
/// `diff buggy.rs fixed.rs` — after one confirmation, unless the exercise
/// is already fixed (or `yes`).
pub fn solution(scenario: &'static dyn Scenario, yes: bool) -> anyhow::Result<()> {
    let info = scenario.info();
    let progress = State::load()?.of(info.id);
    if !yes && !progress.fixed && !progress.solution_seen && !confirm(info.id)? {
        println!(
            "Not shown. `{}` gives a nudge instead.",
            state::command(&format!("hint {}", info.id))
        );
        return Ok(());
    }
    let color = debuglab_harness::terminal::stdout_color();
    println!("{}", solution_text(info.solution).trim_end());
    println!("\n## The reference fix: diff src/buggy.rs src/fixed.rs\n");
    print!(
        "{}",
        crate::diff::unified(info.sources.buggy, info.sources.fixed, color)
    );
    State::update(info.id, |progress| progress.solution_seen = true)?;
    Ok(())
}

/// `SOLUTION.md` without its first line, the list of spoiler terms for tests.
fn solution_text(solution: &str) -> &str {
    match solution.strip_prefix("<!--") {
        Some(rest) => rest
            .split_once("-->")
            .map_or(solution, |(_, text)| text.trim_start()),
        None => solution,
    }
}

/// Asks on the terminal whether to show the solution; a non-terminal is an error that says how.
fn confirm(id: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the solution of {id} gives the bug away; confirm with `{}`",
            state::command(&format!("solution {id} --yes"))
        );
    }
    print!("The solution of {id} names the bug and shows the fix; your exercise is not fixed yet. Show it? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `debuglab reset <id>`: the exercise back to its starting copy, the
/// learner's file kept as a backup.
pub fn reset(scenario: &'static dyn Scenario) -> anyhow::Result<()> {
    let id = scenario.info().id;
    let exercise = state::exercise_path(id);
    let start = state::starting_copy_path(id);
    let original =
        std::fs::read(&start).with_context(|| format!("cannot read {}", start.display()))?;
    let current = std::fs::read(&exercise).unwrap_or_default();
    if current != original {
        let backups = state::state_dir().join("backups");
        std::fs::create_dir_all(&backups)
            .with_context(|| format!("cannot create {}", backups.display()))?;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let backup = backups.join(format!("{id}-exercise-{stamp}.rs"));
        std::fs::write(&backup, &current)
            .with_context(|| format!("cannot write {}", backup.display()))?;
        println!("your version is saved as {}", backup.display());
    }
    std::fs::write(&exercise, &original)
        .with_context(|| format!("cannot write {}", exercise.display()))?;
    State::update(id, |progress| *progress = Default::default())?;
    println!("scenarios/{id}/src/exercise.rs is back to its starting copy; progress and hints for {id} are reset");
    Ok(())
}

/// `debuglab progress`: where the learner stands, scenario by scenario.
pub fn progress(json: bool) -> anyhow::Result<()> {
    let state = State::load()?;
    let rows: Vec<(usize, &'static str, Status, usize)> = scenarios::all()
        .iter()
        .enumerate()
        .map(|(index, scenario)| {
            let progress = state.of(scenario.info().id);
            (
                index + 1,
                scenario.info().id,
                progress.status(),
                progress.hints_shown,
            )
        })
        .collect();
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(order, id, status, hints)| serde_json::json!({"order": order, "id": id, "status": status, "hints_shown": hints}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let fixed = rows.iter().filter(|row| row.2 == Status::Fixed).count();
    println!("{fixed} of {} scenarios fixed\n", rows.len());
    for (order, id, status, hints) in &rows {
        println!("{order}. {id:<16} {:<13} hints {hints}/3", status.label());
    }
    if let Some((_, id, _, _)) = rows.iter().find(|row| row.2 != Status::Fixed) {
        println!("\nnext: {}", state::command(&format!("run {id}")));
    }
    Ok(())
}

/// The first scenario in the suggested order that is not fixed yet.
pub fn next_unfixed() -> anyhow::Result<&'static dyn Scenario> {
    let state = State::load()?;
    scenarios::all()
        .into_iter()
        .find(|scenario| state.of(scenario.info().id).status() != Status::Fixed)
        .ok_or_else(|| anyhow::anyhow!("every scenario is fixed; name one to watch it anyway"))
}

/// `debuglab watch [<id>]`: re-checks the exercise every time it is saved
/// (each check builds the exercise's own program, so the new code runs).
pub async fn watch(scenario: &'static dyn Scenario) -> anyhow::Result<ExitCode> {
    let id = scenario.info().id;
    let path = state::exercise_path(id);
    println!("watching scenarios/{id}/src/exercise.rs — save it to re-check; Ctrl-C to stop");
    let mut last_seen = None;
    loop {
        let modified = std::fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .with_context(|| format!("cannot read {}", path.display()))?;
        if last_seen != Some(modified) {
            last_seen = Some(modified);
            println!("\n— checking {id} —");
            match check(scenario, false).await {
                Ok(code) if code == ExitCode::SUCCESS => {
                    println!("\n{id} is fixed. Next: {}", state::command("progress"));
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(_) => {}
                Err(error) => eprintln!(
                    "{}",
                    debuglab_harness::runner::one_line(&format!("{error:#}"))
                ),
            }
        }
        // Polling the file's time stamp: portable, and a save is seen within half a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints how to investigate what `run --keep` left running.
pub fn print_kept(kept: &Kept) {
    println!(
        "\nThe services are still running for you to investigate; `{}` removes them.\n",
        state::command("clean")
    );
    print!(
        "{}",
        kept.commands(debuglab_harness::terminal::stdout_is_terminal())
    );
}
