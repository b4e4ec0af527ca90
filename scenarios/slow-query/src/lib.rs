//! # Slow query: order history got slow
//!
//! A shop's order-history page shows a user's ten most recent orders; the
//! endpoint behind it is `recent_orders(pool, user_id)`, with the schema
//! changes its version ships (`MIGRATIONS`):
//!
//! ```sql
//! SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10
//! ```
//!
//! It was fast when the shop was new. Now the `orders` table holds a million
//! rows (a hundred for each of ten thousand users), the page takes tens of
//! milliseconds, the database's CPU is busy, and the slow-query log fills up
//! with the same statement.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must still (checked in
//! [`verdict`] from evidence the variant cannot forge):
//!
//! - answer every request with the user's ten newest orders, newest first —
//!   compared with [`data::reference_recent_orders`], computed without the
//!   database;
//! - show an order the moment it is placed — the run places new orders
//!   behind the endpoint's back and asks again;
//! - get its answers from the database: PostgreSQL's own count of the
//!   statements it ran (`pg_stat_statements`) is at least one per answer;
//! - do a small, bounded amount of database work per request: the shared
//!   buffers PostgreSQL touched for the run's statements (`pg_stat_statements`
//!   again, whatever SQL the variant wrote), divided by the requests, stay
//!   within [`verdict::BUFFERS_PER_REQUEST_BOUND`]. Buffers are the same on
//!   any machine for the same data and plan, so a loaded laptop never changes
//!   the verdict; latency is reported as the symptom, never judged.
//!
//! The plan of the real call (captured with `auto_explain`) explains the
//! figure: which scan reads `orders`, how many rows it reads to return ten.
//!
//! The run is laid out in [`workload`] (the traffic), [`probes`] (what is
//! measured and recorded) and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod data;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use chrono::{DateTime, Utc};
pub use debuglab_harness::postgres::PgPool;
use debuglab_harness::postgres::{Migration, RunDatabase};
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use verdict::BUFFERS_PER_REQUEST_BOUND;
pub use workload::{POOL, WORKLOAD};

/// One order, as the endpoint returns it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Order {
    /// The order's id.
    pub id: i64,
    /// Who placed it.
    pub user_id: i64,
    /// `pending`, `paid`, `shipped`, `delivered` or `refunded`.
    pub status: String,
    /// The total, in cents.
    pub total_cents: i64,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// The base schema every variant starts from (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// What the endpoint returns: a user's orders, or the database's error.
pub type Answer = std::result::Result<Vec<Order>, sqlx::Error>;

/// A variant's `recent_orders`, as a plain function pointer.
pub type RecentOrders = for<'p> fn(&'p PgPool, i64) -> BoxFuture<'p, Answer>;

/// The code of one variant: the schema changes it ships and its endpoint.
#[derive(Clone, Copy)]
pub struct Code {
    /// Applied after [`BASE_MIGRATIONS`], before the traffic starts.
    pub migrations: &'static [Migration],
    /// The endpoint.
    pub recent_orders: RecentOrders,
}

/// The [`Code`] of a module that has `MIGRATIONS` and
/// `recent_orders(&PgPool, i64)`: `code_of!(fixed)`. The exercise's binary
/// and the tests use it for code that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn recent_orders(
            pool: &$crate::PgPool,
            user_id: i64,
        ) -> $crate::BoxFuture<'_, $crate::Answer> {
            ::std::boxed::Box::pin($code::recent_orders(pool, user_id))
        }
        $crate::Code {
            migrations: $code::MIGRATIONS,
            recent_orders,
        }
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "slow-query",
    title: "Slow query",
    summary: "The order-history page got slow as the orders table grew; the database's CPU is busy and the slow-query log fills with one statement.",
    services: &[Service::Postgres],
    signal_metric: "buffers_per_request",
    key_metrics: &[
        "p50_ms",
        "p95_ms",
        "buffers_per_request",
        "queries_per_request",
        "plan_rows_read",
        "rows_removed_by_filter",
        "slow_log_lines",
        "wrong_answers",
        "stale_answers",
    ],
    live_gauges: &["buffers_per_query", "ms_per_query", "active_queries"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The slow-query scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct SlowQuery {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: SlowQuery = SlowQuery { candidate: None };

impl SlowQuery {
    /// The scenario with `code` as what its exercise variant runs.
    pub const fn with_candidate(code: Code) -> SlowQuery {
        SlowQuery {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` uses.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }

    /// Applies `variant`'s migrations to `database` (a copy of
    /// [`data::ORDERS_TEMPLATE`]) and returns its endpoint, for tests that
    /// call it directly.
    pub async fn prepare(&self, database: &RunDatabase, variant: Variant) -> Result<RecentOrders> {
        let code = self.code(variant)?;
        database.migrate(&BASE_MIGRATIONS, code.migrations).await?;
        Ok(code.recent_orders)
    }
}

impl Scenario for SlowQuery {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_history(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
