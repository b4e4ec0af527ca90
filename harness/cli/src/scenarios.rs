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
    ]
}

/// The scenario called `id`, or a one-line error that lists the known ids.
pub fn find(id: &str) -> anyhow::Result<&'static dyn Scenario> {
    all()
        .into_iter()
        .find(|scenario| scenario.info().id == id)
        .ok_or_else(|| {
            let known: Vec<&str> = all().iter().map(|scenario| scenario.info().id).collect();
            anyhow::anyhow!(
                "unknown scenario '{id}'; known scenarios: {} (see `debuglab list`)",
                known.join(", ")
            )
        })
}

/// Runs one replica process of scenario `id` (`debuglab __replica <id> …`).
pub fn replica_main(id: &str, args: Vec<String>) -> std::process::ExitCode {
    match id {
        "race-condition" => race_condition::replica_main(args),
        _ => {
            eprintln!("error: scenario '{id}' has no replicas");
            std::process::ExitCode::from(2)
        }
    }
}
