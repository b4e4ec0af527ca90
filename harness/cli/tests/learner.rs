//! The learner's commands, with state (and, for reset, the repository) in
//! temporary directories.

use std::path::Path;
use std::process::{Command, Output};

fn debuglab(state_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(args)
        .env("DEBUGLAB_STATE_DIR", state_dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("debuglab starts")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn list_status(state_dir: &Path, id: &str) -> String {
    let output = debuglab(state_dir, &["list", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let items: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let item = items
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == id)
        .unwrap();
    item["status"].as_str().unwrap().to_owned()
}

#[test]
fn hints_come_one_at_a_time_and_are_remembered() {
    let state = tempfile::tempdir().unwrap();
    assert_eq!(list_status(state.path(), "slow-query"), "not_started");
    let mut seen = Vec::new();
    for round in 1..=4 {
        let output = debuglab(state.path(), &["hint", "slow-query"]);
        assert!(output.status.success(), "{}", stderr_of(&output));
        let text = stdout_of(&output);
        let expected = round.min(3);
        assert!(
            text.starts_with(&format!("Hint {expected} of 3 for slow-query")),
            "{text}"
        );
        seen.push(text);
    }
    // Gentle first, explicit last; asking again repeats the last one, and
    // the last points to the solution.
    assert_ne!(seen[0], seen[1]);
    assert!(seen[2].contains("CREATE INDEX"), "{}", seen[2]);
    assert!(seen[2].contains("solution slow-query"), "{}", seen[2]);
    assert_eq!(seen[2], seen[3]);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(saved["scenarios"]["slow-query"]["hints_shown"], 3);
    assert_eq!(list_status(state.path(), "slow-query"), "symptom_seen");
}

#[test]
fn progress_and_list_show_the_saved_state() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("state.json"),
        r#"{"scenarios": {"slow-query": {"fixed": true}, "pool-exhaustion": {"symptom_seen": true}}}"#,
    )
    .unwrap();
    assert_eq!(list_status(state.path(), "slow-query"), "fixed");
    assert_eq!(list_status(state.path(), "pool-exhaustion"), "symptom_seen");
    let output = debuglab(state.path(), &["progress"]);
    let text = stdout_of(&output);
    let listed = debuglab(state.path(), &["list", "--format", "json"]);
    let known = serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap();
    let known = known.as_array().unwrap().len();
    assert!(
        text.starts_with(&format!("1 of {known} scenarios fixed")),
        "{text}"
    );
    assert!(text.contains("run pool-exhaustion"), "{text}");
}

#[test]
fn a_damaged_state_file_is_one_line_saying_what_to_do() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("state.json"), "{ not json").unwrap();
    let output = debuglab(state.path(), &["progress"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("delete it to start over"), "{stderr}");
}

#[test]
fn reset_restores_the_starting_copy_and_keeps_a_backup() {
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("scenarios/slow-query/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("buggy.rs"), "// the starting copy\n").unwrap();
    std::fs::write(src.join("exercise.rs"), "// the learner's attempt\n").unwrap();
    std::fs::write(
        state.path().join("state.json"),
        r#"{"scenarios": {"slow-query": {"hints_shown": 2}}}"#,
    )
    .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["reset", "slow-query"])
        .env("DEBUGLAB_STATE_DIR", state.path())
        .env("DEBUGLAB_ROOT", root.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read_to_string(src.join("exercise.rs")).unwrap(),
        "// the starting copy\n"
    );
    let backups: Vec<_> = std::fs::read_dir(state.path().join("backups"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&backups[0]).unwrap(),
        "// the learner's attempt\n"
    );
    assert_eq!(list_status(state.path(), "slow-query"), "not_started");
}

#[test]
fn unknown_scenarios_are_one_line_errors_for_every_command() {
    let state = tempfile::tempdir().unwrap();
    for command in ["hint", "reset", "check", "watch", "solution"] {
        let output = debuglab(state.path(), &[command, "nope"]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{command}: {}",
            stderr_of(&output)
        );
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains("unknown scenario 'nope'"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn a_mistyped_scenario_gets_a_suggestion() {
    let state = tempfile::tempdir().unwrap();
    let output = debuglab(state.path(), &["hint", "slow-qeury"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("did you mean 'slow-query'?"), "{stderr}");
}

/// `debuglab` run with the exercise's code replaced by `code` (`starting`:
/// the untouched exercise, `reference`: the fix) — never the learner's file.
fn debuglab_with_code(state_dir: &Path, code: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(args)
        .env("DEBUGLAB_STATE_DIR", state_dir)
        .env("DEBUGLAB_EXERCISE_CODE", code)
        .env_remove("RUST_LOG")
        .output()
        .expect("debuglab starts")
}

#[test]
fn check_fails_on_the_untouched_exercise_in_two_lines() {
    let state = tempfile::tempdir().unwrap();
    let output = debuglab_with_code(state.path(), "starting", &["check", "listener-leak"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with("✗ listener-leak: not fixed yet."),
        "{text}"
    );
    assert!(text.contains("hint listener-leak"), "{text}");
    // The starting copy is not the learner's work: no progress recorded.
    assert_eq!(list_status(state.path(), "listener-leak"), "not_started");
}

#[test]
fn check_passes_with_the_reference_fix_and_run_shows_it_as_the_exercise() {
    let state = tempfile::tempdir().unwrap();
    let output = debuglab_with_code(state.path(), "reference", &["check", "listener-leak"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout_of(&output),
        stderr_of(&output)
    );
    assert!(
        stdout_of(&output).starts_with("✓ listener-leak: fixed."),
        "{}",
        stdout_of(&output)
    );
    let output = debuglab_with_code(
        state.path(),
        "starting",
        &["run", "listener-leak", "--format", "json"],
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["variant"], "exercise");
    assert_eq!(report["healthy"], false, "{report:#}");
}

#[test]
fn the_solution_asks_first_and_then_shows_the_explanation_and_the_diff() {
    let state = tempfile::tempdir().unwrap();
    // No terminal to ask on: one line that says how to confirm.
    let output = debuglab(state.path(), &["solution", "pool-exhaustion"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("solution pool-exhaustion --yes"),
        "{stderr}"
    );
    assert!(stdout_of(&output).is_empty());

    let output = debuglab(state.path(), &["solution", "pool-exhaustion", "--yes"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert!(text.starts_with("# Solution: pool exhaustion"), "{text}");
    assert!(!text.contains("<!-- spoilers"), "{text}");
    assert!(
        text.contains("--- src/buggy.rs\n+++ src/fixed.rs\n@@ "),
        "{text}"
    );

    // Once seen (or once fixed), it is shown without asking.
    let output = debuglab(state.path(), &["solution", "pool-exhaustion"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    std::fs::write(
        state.path().join("state.json"),
        r#"{"scenarios": {"race-condition": {"fixed": true}}}"#,
    )
    .unwrap();
    let output = debuglab(state.path(), &["solution", "race-condition"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
}

#[test]
fn commands_are_named_as_the_learner_can_type_them() {
    let state = tempfile::tempdir().unwrap();
    let path_without = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["progress"])
        .env("DEBUGLAB_STATE_DIR", state.path())
        .env("PATH", path_without.path())
        .output()
        .unwrap();
    assert!(
        stdout_of(&output).contains("next: cargo run -q -p debuglab -- run slow-query"),
        "{}",
        stdout_of(&output)
    );
    let path_with = tempfile::tempdir().unwrap();
    std::fs::write(path_with.path().join("debuglab"), "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["progress"])
        .env("DEBUGLAB_STATE_DIR", state.path())
        .env("PATH", path_with.path())
        .output()
        .unwrap();
    assert!(
        stdout_of(&output).contains("next: debuglab run slow-query"),
        "{}",
        stdout_of(&output)
    );
}

#[test]
fn the_checkout_is_found_from_any_directory_inside_it() {
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("scenarios/slow-query/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(root.path().join("harness/cli")).unwrap();
    std::fs::write(root.path().join("harness/cli/Cargo.toml"), "").unwrap();
    std::fs::write(src.join("buggy.rs"), "// the starting copy\n").unwrap();
    std::fs::write(src.join("exercise.rs"), "// the learner's attempt\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["reset", "slow-query"])
        .current_dir(&src)
        .env("DEBUGLAB_STATE_DIR", state.path())
        .env_remove("DEBUGLAB_ROOT")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read_to_string(src.join("exercise.rs")).unwrap(),
        "// the starting copy\n"
    );
}
