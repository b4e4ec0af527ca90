//! The learner's loop: check an exercise, ask for hints, reset it, see
//! progress, re-check on every save.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use debuglab_harness::run::Kept;
use debuglab_harness::{Report, RunOptions, Scenario, Variant};

use crate::scenarios;
use crate::state::{self, State, Status};

/// Records what a run of `variant` showed about the learner's progress.
pub fn record_run(report: &Report) -> anyhow::Result<()> {
    if report.variant != Variant::Exercise {
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

/// Warns when the exercise changed after this binary was built: the run
/// would test the old code. (`cargo run -p debuglab -- …` always rebuilds.)
pub fn warn_if_stale(id: &str) {
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let exercise = modified(&state::exercise_path(id));
    let binary = std::env::current_exe().ok().and_then(|exe| modified(&exe));
    if let (Some(exercise), Some(binary)) = (exercise, binary) {
        if exercise > binary {
            eprintln!(
                "warning: scenarios/{id}/src/exercise.rs changed after this debuglab was built; use `cargo run -p debuglab -- …` to test your latest code"
            );
        }
    }
}

/// `debuglab check <id>`: runs the exercise and says in a line or two whether it is fixed.
pub async fn check(scenario: &'static dyn Scenario, json: bool) -> anyhow::Result<ExitCode> {
    let id = scenario.info().id;
    warn_if_stale(id);
    let report =
        debuglab_harness::run(scenario, Variant::Exercise, &RunOptions::from_env()?).await?;
    record_run(&report)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.healthy {
        println!("✓ {id}: fixed. {}", report.summary);
        println!("  The cargo check agrees: cargo test -p {id} --features exercise");
    } else {
        println!("✗ {id}: not fixed yet. {}", report.summary);
        println!("  Evidence: debuglab run {id}   Hint: debuglab hint {id}");
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
    anyhow::ensure!(
        !hints.is_empty(),
        "scenario {} has no hints in its README",
        info.id
    );
    let shown = State::load()?.of(info.id).hints_shown;
    let next = shown.min(hints.len() - 1);
    println!("Hint {} of {} for {}:\n", next + 1, hints.len(), info.id);
    println!("{}", hints[next]);
    if next + 1 < hints.len() {
        println!(
            "\n(`debuglab hint {}` again for a more explicit one)",
            info.id
        );
    } else {
        println!(
            "\n(that was the last hint; the reference fix is scenarios/{}/src/fixed.rs)",
            info.id
        );
    }
    State::update(info.id, |progress| {
        progress.hints_shown = (next + 1).max(progress.hints_shown)
    })?;
    Ok(())
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
        println!("\nnext: debuglab run {id}");
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

/// `debuglab watch [<id>]`: re-checks the exercise every time it is saved,
/// by running `cargo run -p debuglab -- check <id>` (so the new code is built).
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
            let status = tokio::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
            )
            .args(["run", "--quiet", "-p", "debuglab", "--", "check", id])
            .current_dir(state::repo_root())
            .status()
            .await
            .context("cannot run cargo")?;
            if status.success() {
                println!("\n{id} is fixed. Next: debuglab progress");
                return Ok(ExitCode::SUCCESS);
            }
        }
        // Polling the file's time stamp: portable, and a save is seen within half a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints how to investigate what `run --keep` left running.
pub fn print_kept(kept: &Kept) {
    println!(
        "\nThe services are still running for you to investigate; `debuglab clean` removes them."
    );
    for database in &kept.postgres {
        match &database.container_id {
            Some(container) => {
                let short = &container[..container.len().min(12)];
                println!("\nPostgreSQL (database {}):", database.name);
                println!(
                    "  docker exec -it {short} psql -U postgres -d {}",
                    database.name
                );
                println!("  then, for example:");
                println!("    EXPLAIN (ANALYZE, BUFFERS) <the slow query>;");
                println!("    SELECT pid, state, now() - xact_start AS xact_age, query FROM pg_stat_activity WHERE datname = current_database();");
                println!("    SELECT calls, mean_exec_time, query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5;");
            }
            None => println!(
                "\nPostgreSQL database {} on the server in DEBUGLAB_POSTGRES_URL",
                database.name
            ),
        }
    }
    for redis in &kept.redis {
        match &redis.container_id {
            Some(container) => {
                let short = &container[..container.len().min(12)];
                println!("\nRedis (database {}):", redis.db);
                println!("  docker exec -it {short} redis-cli -n {}", redis.db);
                println!("  then, for example: INFO clients · INFO memory · SLOWLOG GET 10 · CLIENT LIST · DBSIZE");
                println!("  docker exec -it {short} redis-cli -n {} MONITOR        (watch commands live)", redis.db);
                println!("  docker exec -it {short} redis-cli -n {} --bigkeys      (what takes the space)", redis.db);
            }
            None => println!(
                "\nRedis database {} on the server in DEBUGLAB_REDIS_URL",
                redis.db
            ),
        }
    }
}
