//! The learner's exercise as a program of its own.
//!
//! `src/exercise.rs` is compiled here and nowhere else, so a half-typed
//! exercise never breaks the scenario's library, the CLI, or the workspace's
//! tests. `debuglab run listener-leak` and `debuglab check listener-leak`
//! build this binary (feature `exercise`) and start it; see
//! `debuglab_harness::runner` for its arguments.

// The scenario judges the heap: this program counts it.
debuglab_harness::install_counting_allocator!();

// The exercise refers to the service's types as `crate::…`, as buggy.rs does.
pub use listener_leak::*;

#[path = "../exercise.rs"]
mod exercise;

static EXERCISE: ListenerLeak = ListenerLeak::with_candidate(data_service_of!(exercise));

fn main() -> std::process::ExitCode {
    debuglab_harness::runner::main(&EXERCISE)
}
