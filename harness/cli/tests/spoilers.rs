//! Nothing a learner reads before asking for help gives the fix away: the
//! words that do are listed in each scenario's `SOLUTION.md`, and none of
//! them may appear in its README, its library's sources, its exercise, its
//! summary, or the repository's README. (Each scenario's tests check the
//! same of a buggy run's report.)

use std::path::PathBuf;

use debuglab_harness::{Scenario, ScenarioInfo};

fn scenarios() -> Vec<&'static ScenarioInfo> {
    vec![
        slow_query::SCENARIO.info(),
        pool_exhaustion::SCENARIO.info(),
        race_condition::SCENARIO.info(),
        listener_leak::SCENARIO.info(),
        unbounded_cache::SCENARIO.info(),
        n_plus_one::SCENARIO.info(),
        lock_deadlock::SCENARIO.info(),
        blocked_runtime::SCENARIO.info(),
        cpu_hotpath::SCENARIO.info(),
        cache_stampede::SCENARIO.info(),
        unbounded_queue::SCENARIO.info(),
        retry_storm::SCENARIO.info(),
    ]
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a learner reads in a scenario before asking: its story, its
/// library, its base migrations (`migrations/*.sql`, read below), and the
/// exercise's starting copy (`buggy.rs`; the learner's own
/// `exercise.rs` is never read by the suite, whatever it holds). Of
/// `Cargo.toml`, the description: the dependencies must name what
/// `fixed.rs` uses.
const LEARNER_FILES: [&str; 6] = [
    "README.md",
    "src/lib.rs",
    "src/workload.rs",
    "src/probes.rs",
    "src/verdict.rs",
    "src/buggy.rs",
];

#[test]
fn every_solution_lists_its_spoilers_and_every_scenario_has_three_hints() {
    for info in scenarios() {
        assert!(
            !info.spoilers().is_empty(),
            "scenarios/{}/SOLUTION.md lists no spoilers on its first line",
            info.id
        );
        assert_eq!(info.hints().len(), 3, "scenarios/{}/HINTS.md", info.id);
    }
}

#[test]
fn no_file_a_learner_reads_first_names_the_fix() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for info in scenarios() {
        let dir = repo().join("scenarios").join(info.id);
        for file in LEARNER_FILES {
            let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                continue;
            };
            let found = info.spoilers_in(&text);
            assert!(
                found.is_empty(),
                "scenarios/{}/{file} gives the fix away: {found:?}",
                info.id
            );
        }
        for migration in std::fs::read_dir(dir.join("migrations"))
            .into_iter()
            .flatten()
        {
            let path = migration.unwrap().path();
            let found = info.spoilers_in(&std::fs::read_to_string(&path).unwrap());
            assert!(
                found.is_empty(),
                "{} gives the fix away: {found:?}",
                path.display()
            );
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let description = manifest
            .lines()
            .find(|line| line.starts_with("description"))
            .unwrap_or_default();
        let found = info.spoilers_in(description);
        assert!(
            found.is_empty(),
            "scenarios/{}/Cargo.toml's description gives the fix away: {found:?}",
            info.id
        );
        let found = info.spoilers_in(&format!("{} {}", info.title, info.summary));
        assert!(
            found.is_empty(),
            "{}'s summary gives the fix away: {found:?}",
            info.id
        );
        let found = info.spoilers_in(&readme);
        assert!(
            found.is_empty(),
            "README.md gives {}'s fix away: {found:?}",
            info.id
        );
    }
}
