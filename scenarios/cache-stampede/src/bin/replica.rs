//! A replica process for the scenario's tests (they start it with
//! `debuglab_harness::replica::set_program`): the buggy and fixed code, and
//! the test candidates of `tests/suite/candidates.rs` — wrong fixes and
//! other correct fixes, which the library never carries — chosen with
//! `--code NAME`.

// The candidates refer to the service's types as `crate::…`, as buggy.rs does.
pub use cache_stampede::*;

#[path = "../../tests/suite/candidates.rs"]
mod candidates;

use debuglab_harness::Scenario;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let candidate = replica::code_name(&args).and_then(|name| {
        candidates::ALL
            .iter()
            .find(|code| code.name == name)
            .copied()
    });
    let scenario: &'static CacheStampede = match candidate {
        Some(code) => Box::leak(Box::new(CacheStampede::with_candidate(code))),
        None => &SCENARIO,
    };
    scenario
        .replica_main(args)
        .unwrap_or(std::process::ExitCode::FAILURE)
}
