//! # debuglab-harness
//!
//! The machinery every debuglab scenario stands on. A scenario describes a
//! service, its workload and its objective; the harness owns everything else:
//!
//! - **services** ([`postgres`], [`redis`]): real servers in containers (one
//!   per service per process), or servers named by `DEBUGLAB_*_URL`, with a
//!   fresh database per run so that runs and tests are isolated;
//! - **pools** ([`PoolSettings`]): built by the harness with sizes and timeouts
//!   set by the scenario's workload, and handed to the variant under test;
//! - **time budgets** ([`RunContext::within`], [`RunContext::drive`]): a
//!   variant that hangs is cut off and the hang reported as evidence;
//! - **a watch from outside** ([`guard`]): every run has a runtime of its own,
//!   watched by a thread outside it, so a variant that blocks its threads,
//!   spins or deadlocks is stopped within the budget and judged unhealthy;
//! - **pools read back** ([`pools`]): a pool resized from inside the variant
//!   makes the run unhealthy;
//! - **probes**: `pg_stat_statements`, `pg_stat_activity`, `pg_locks`, plans
//!   captured with `auto_explain`, the slow-query log, Redis `INFO`,
//!   `CLIENT LIST`, `SLOWLOG`, key TTLs; live heap bytes ([`alloc`], a
//!   counting global allocator each program opts into), and [`sampler`] to follow any of them over a run;
//! - **replicas** ([`replica`]): copies of a service as separate processes;
//! - **a dependency on loopback** ([`downstream`]): a small TCP service with
//!   a capacity, a bounded queue and an outage window, counting every attempt
//!   it receives, for scenarios about how a client treats what it calls;
//! - **reports** ([`Report`]): the verdict, metrics and evidence of a run, with
//!   secrets redacted ([`redact`]), and the series it followed with the
//!   plots that draw them ([`plot`]);
//! - **exercises** ([`runner`]): the learner's code runs in a binary of its
//!   own, never compiled into a library; [`live`] keeps a workload going
//!   while the learner investigates;
//! - **clean-up** ([`session`], [`external`]): every container carries the
//!   `debuglab` label and is removed when the process ends, however it ends;
//!   on servers named by URL, what a process made goes when it ends, and
//!   `debuglab clean --server` removes what killed processes left.
//!
//! A scenario implements [`Scenario`]; [`run()`] runs one of its variants.

pub mod alloc;
pub mod cpu;
pub mod docker;
pub mod downstream;
pub mod error;
pub mod external;
pub mod guard;
pub mod investigate;
pub mod latency;
pub mod live;
pub mod plot;
pub mod pools;
pub mod postgres;
pub mod progress;
pub mod redact;
pub mod redis;
pub mod replica;
pub mod report;
pub mod run;
pub mod runner;
pub mod sampler;
pub mod scenario;
pub mod service;
pub mod session;
pub mod stats;
pub mod terminal;
pub mod testing;
mod watcher;
pub mod workload;

use std::time::Duration;

pub use error::{HarnessError, Result};
pub use investigate::Kept;
pub use plot::{Plot, PlotKind};
pub use report::{Outcome, Report};
pub use run::{run, run_and_keep, run_observed, RunContext, RunOptions};
pub use scenario::{Scenario, ScenarioInfo, Sources, Variant, Verdict};
pub use service::Service;

/// Size and timeout of a connection pool the harness builds for a variant.
///
/// Scenarios choose these as part of their workload; variants only receive the
/// pool, and the harness reads its settings back when the run ends
/// ([`pools`]), so a "fix" that only enlarges a pool cannot pass.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long getting a connection waits before it fails (sqlx's `PoolTimedOut`).
    pub acquire_timeout: Duration,
}

/// Removes what this process made, on its containers and on servers named
/// by URL, now; the CLI calls it before it exits.
///
/// Tests need not call it: the session's exit hook does the same.
pub fn shutdown() {
    session::end();
}
