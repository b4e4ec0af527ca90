//! # CPU hot path: quotes for big orders take seconds while the database is idle
//!
//! A hardware shop sells each product in packs — single, six, a dozen, a
//! box of 24 — each at its own price. The endpoint behind the basket is
//! `quote(pool, product_id, quantity)`: the cheapest way to buy that many,
//! and which packs. It reads the product's packs from PostgreSQL (one small
//! query) and computes.
//!
//! Most baskets ask for a handful and are quoted at once. Trade customers
//! order forty at a time; their quotes take ever longer, the service's CPU
//! is pegged while the database is idle, and every other basket on the same
//! machine waits.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must (checked in [`verdict`]
//! from evidence the variant cannot forge):
//!
//! - quote every quantity right: packs that make the quantity, priced as the
//!   shop prices them, at the cheapest total there is (computed without the
//!   service, [`data::reference_total`]) — no cap on the quantity, no guess;
//! - use the prices the shop has now: the run changes a price behind the
//!   endpoint's back and asks again;
//! - cost about the same CPU for forty units as for four: the CPU time the
//!   process spends per quote, measured by the kernel for the quotes of each
//!   size in the same run, may grow at most [`verdict::GROWTH_BOUND`] times
//!   from the small quotes to the large ones.
//!
//! CPU time is counted, not wall time, so a busy laptop never changes the
//! verdict; latency by quantity and a CPU profile of the run are the
//! evidence a senior engineer would look at.

pub mod buggy;
pub mod data;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::collections::BTreeMap;

pub use debuglab_harness::postgres::PgPool;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

/// One pack a product is sold in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Pack {
    /// Units in the pack.
    pub size: i64,
    /// Its price, in cents.
    pub price_cents: i64,
}

/// A quote: the total and the packs that make it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// What the packs cost together, in cents.
    pub total_cents: i64,
    /// How many of each pack size.
    pub packs: BTreeMap<i64, i64>,
}

/// The packs `product_id` is sold in, smallest first (one query).
pub async fn load_packs(pool: &PgPool, product_id: i64) -> sqlx::Result<Vec<Pack>> {
    sqlx::query_as("SELECT size, price_cents FROM packs WHERE product_id = $1 ORDER BY size")
        .bind(product_id)
        .fetch_all(pool)
        .await
}

/// The products and their packs (`migrations/`); the rows are written by
/// [`data::open_shop`].
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// What the endpoint returns.
pub type Answer = sqlx::Result<Option<Quote>>;

/// A variant's `quote(pool, product_id, quantity)`, as a plain function pointer.
pub type QuoteFn = for<'p> fn(&'p PgPool, i64, i64) -> BoxFuture<'p, Answer>;

/// The code of one variant: its endpoint.
#[derive(Clone, Copy)]
pub struct Code {
    /// The endpoint.
    pub quote: QuoteFn,
}

/// The [`Code`] of a module that has `quote(&PgPool, i64, i64)`:
/// `code_of!(fixed)`. The exercise's binary and the tests use it for code
/// that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn quote(
            pool: &$crate::PgPool,
            product_id: i64,
            quantity: i64,
        ) -> $crate::BoxFuture<'_, $crate::Answer> {
            ::std::boxed::Box::pin($code::quote(pool, product_id, quantity))
        }
        $crate::Code { quote }
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "cpu-hotpath",
    title: "CPU hot path",
    summary: "Quotes for big orders take ever longer and peg the service's CPU, while the database is idle.",
    services: &[Service::Postgres],
    signal_metric: "cpu_growth",
    key_metrics: &[
        "cpu_ms_per_quote_small",
        "cpu_ms_per_quote_large",
        "cpu_growth",
        "p50_ms_small",
        "p50_ms_large",
        "p99_ms_large",
        "wrong_answers",
        "stale_answers",
    ],
    live_gauges: &["cpu_ms_per_quote", "quotes"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The CPU hot-path scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct CpuHotpath {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: CpuHotpath = CpuHotpath { candidate: None };

impl CpuHotpath {
    /// The scenario with `code` as what its exercise variant runs.
    pub const fn with_candidate(code: Code) -> CpuHotpath {
        CpuHotpath {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` uses.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }
}

impl Scenario for CpuHotpath {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_quotes(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
