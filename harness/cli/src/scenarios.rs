//! Every scenario the CLI knows, in the suggested learning order.

use debuglab_harness::Scenario;

/// All scenarios, easiest first.
pub fn all() -> Vec<&'static dyn Scenario> {
    vec![
        &slow_query::SCENARIO,
        &pool_exhaustion::SCENARIO,
        &race_condition::SCENARIO,
        &listener_leak::SCENARIO,
        &unbounded_cache::SCENARIO,
        &n_plus_one::SCENARIO,
        &lock_deadlock::SCENARIO,
        &cpu_hotpath::SCENARIO,
        &blocked_runtime::SCENARIO,
        &cache_stampede::SCENARIO,
        &unbounded_queue::SCENARIO,
        &retry_storm::SCENARIO,
    ]
}

/// The scenario called `id`, or a one-line error that suggests the closest
/// id ("did you mean …?") and lists the known ones.
pub fn find(id: &str) -> anyhow::Result<&'static dyn Scenario> {
    let known: Vec<&'static str> = all().iter().map(|scenario| scenario.info().id).collect();
    if let Some(scenario) = all().into_iter().find(|scenario| scenario.info().id == id) {
        return Ok(scenario);
    }
    let suggestion = closest(id, &known)
        .map(|close| format!("did you mean '{close}'? "))
        .unwrap_or_default();
    anyhow::bail!(
        "unknown scenario '{id}'; {suggestion}known scenarios: {} (see `debuglab list`)",
        known.join(", ")
    )
}

/// The known id closest to `typed`, if it is close enough to be a typo.
fn closest<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|id| (strsim::jaro_winkler(typed, id), *id))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, id)| id)
}

/// Runs one replica process of the scenario named in the environment
/// (`debuglab __replica -- …`, started by a run of that scenario).
pub fn replica_main(args: Vec<String>) -> std::process::ExitCode {
    let id = std::env::var(debuglab_harness::replica::SCENARIO_ENV).unwrap_or_default();
    let replica = find(&id)
        .ok()
        .and_then(|scenario| scenario.replica_main(args));
    replica.unwrap_or_else(|| {
        eprintln!("error: scenario '{id}' has no replicas");
        std::process::ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        let known = ["slow-query", "pool-exhaustion", "race-condition"];
        assert_eq!(closest("slow-qeury", &known), Some("slow-query"));
        assert_eq!(closest("pool_exhaustion", &known), Some("pool-exhaustion"));
        assert_eq!(closest("racecondition", &known), Some("race-condition"));
        assert_eq!(closest("kubernetes", &known), None);
    }
}
