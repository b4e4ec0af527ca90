//! The scenario's tests, in one program so that its containers start once:
//!
//! - [`variants`]: the buggy variant reproduces the symptom in every run, the
//!   fixed one verifies, and the signal between them is clear;
//! - [`wrong_fixes`]: the ways people really get this bug wrong, each judged
//!   unhealthy with the line that says why, and another correct fix judged
//!   healthy;
//! - [`properties`]: the fix changes what was wrong and nothing else.

// Candidate code in `wrong_fixes` refers to the service's types as
// `crate::…`, as buggy.rs does.
pub use retry_storm::*;

mod properties;
mod variants;
mod wrong_fixes;
