//! The scenario's tests, in one program so that its containers start and
//! its data is seeded once:
//!
//! - [`variants`]: the buggy variant reproduces the symptom, the fixed one
//!   verifies, and the signal between them is clear;
//! - [`wrong_fixes`]: the ways people really get this bug wrong, each judged
//!   unhealthy with the line that says why, and other correct fixes judged
//!   healthy;
//! - [`properties`]: the fix changes what was wrong and nothing else.
//!
//! The replicas of every run are processes of `cache-stampede-replica`,
//! which carries the candidates of [`candidates`] too.

// Candidate code refers to the service's types as `crate::…`, as buggy.rs does.
pub use cache_stampede::*;

mod candidates;
mod properties;
mod variants;
mod wrong_fixes;

/// Tells the harness to start replicas as this package's replica program.
pub fn use_replica_program() {
    debuglab_harness::replica::set_program(env!("CARGO_BIN_EXE_cache-stampede-replica"), &[]);
}
