//! The learner's exercise as a program of its own.
//!
//! `src/exercise.rs` is compiled here and nowhere else, so a half-typed
//! exercise never breaks the scenario's library, the CLI, or the workspace's
//! tests. `debuglab run unbounded-queue` and `debuglab check unbounded-queue`
//! build this binary (feature `exercise`) and start it; see
//! `debuglab_harness::runner` for its arguments.

// The exercise refers to the ingester's types as `crate::…`, as buggy.rs does.
pub use unbounded_queue::*;

// The live heap is part of the evidence.
debuglab_harness::install_counting_allocator!();

#[path = "../exercise.rs"]
mod exercise;

static EXERCISE: UnboundedQueue = UnboundedQueue::with_candidate(ingest_of!(exercise));

fn main() -> std::process::ExitCode {
    debuglab_harness::runner::main(&EXERCISE)
}
