//! The learner's exercise as a program of its own.
//!
//! `src/exercise.rs` is compiled here and nowhere else, so a half-typed
//! exercise never breaks the scenario's library, the CLI, or the workspace's
//! tests. `debuglab run retry-storm` and `debuglab check retry-storm` build
//! this binary (feature `exercise`) and start it; see
//! `debuglab_harness::runner` for its arguments.

// The exercise refers to the service's types as `crate::…`, as buggy.rs does.
pub use retry_storm::*;

#[path = "../exercise.rs"]
mod exercise;

static EXERCISE: RetryStorm = RetryStorm::with_candidate(reserve_stock_of!(exercise));

fn main() -> std::process::ExitCode {
    debuglab_harness::runner::main(&EXERCISE)
}
