//! # N+1: the order-history page that grew slower with every order it shows
//!
//! A shop's order-history page lists a customer's newest orders, each with
//! its line items and the names of the products in them. The endpoint
//! behind it is `order_page(pool, customer_id, page_size)`. The shop's
//! database is in another zone, a millisecond away: the harness puts that
//! network between the service's pool and PostgreSQL
//! ([`debuglab_harness::latency`], [`workload::ROUND_TRIP_DELAY`]).
//!
//! Every query the page runs is fast — none of them reaches the slow-query
//! log, the database's CPU is idle — yet a page of twenty orders takes well
//! over a hundred milliseconds, and the new "show 100 orders" option takes
//! five times as long.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must still (checked in
//! [`verdict`] from evidence the variant cannot forge):
//!
//! - answer every request with the customer's newest orders, newest first,
//!   as many as the page asks for, each with all its line items in order and
//!   the products' current names — compared with [`data::reference_page`],
//!   computed without the database;
//! - show what changed a moment ago: the run places a new order and renames
//!   a product behind the endpoint's back, then asks again;
//! - get its answers from the database: PostgreSQL's own count of the
//!   statements it ran (`pg_stat_statements`) is at least one per page;
//! - run a small number of statements per page, the same for a page of
//!   twenty orders as for a page of a hundred: at most
//!   [`verdict::STATEMENTS_PER_PAGE_BOUND`], counted by the server whatever
//!   SQL the variant wrote, however it sends it;
//! - fetch about what the page shows: the rows PostgreSQL returned per page
//!   stay within [`verdict::ROWS_PER_SHOWN_BOUND`] times the orders and line
//!   items on it.
//!
//! Statements are counted, not timed, so a busy laptop never changes the
//! verdict; the latency of the two page sizes is reported as the symptom.
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
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use verdict::{ROWS_PER_SHOWN_BOUND, STATEMENTS_PER_PAGE_BOUND};
pub use workload::{PAGE_SIZES, POOL, ROUND_TRIP_DELAY};

/// One order on the page, with its line items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderView {
    /// The order's id.
    pub id: i64,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// `pending`, `paid`, `shipped`, `delivered` or `refunded`.
    pub status: String,
    /// The total, in cents.
    pub total_cents: i64,
    /// Its line items, by line number.
    pub items: Vec<LineItem>,
}

/// One line of an order, as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineItem {
    /// The line's number within its order, from 1.
    pub line_no: i32,
    /// The product (the page links to it).
    pub product_id: i64,
    /// The product's name as the catalogue has it now.
    pub product_name: String,
    /// How many were bought.
    pub quantity: i32,
    /// The price paid for one, in cents.
    pub unit_price_cents: i64,
}

/// A row of `orders`, as the page reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    /// The order's id.
    pub id: i64,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Its status.
    pub status: String,
    /// Its total, in cents.
    pub total_cents: i64,
}

impl OrderRow {
    /// The order as the page shows it, with `items`.
    pub fn with_items(self, items: Vec<LineItem>) -> OrderView {
        OrderView {
            id: self.id,
            placed_at: self.placed_at,
            status: self.status,
            total_cents: self.total_cents,
            items,
        }
    }
}

/// A row of `order_items` with its product's name, as the page reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LineItemRow {
    /// The order it belongs to.
    pub order_id: i64,
    /// Its line number.
    pub line_no: i32,
    /// The product.
    pub product_id: i64,
    /// The product's name.
    pub product_name: String,
    /// How many.
    pub quantity: i32,
    /// The price paid for one, in cents.
    pub unit_price_cents: i64,
}

impl LineItemRow {
    /// The line as the page shows it.
    pub fn into_item(self) -> LineItem {
        LineItem {
            line_no: self.line_no,
            product_id: self.product_id,
            product_name: self.product_name,
            quantity: self.quantity,
            unit_price_cents: self.unit_price_cents,
        }
    }
}

/// The schema every variant runs on (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// What the endpoint returns: the page, or the database's error.
pub type Answer = std::result::Result<Vec<OrderView>, sqlx::Error>;

/// A variant's `order_page(pool, customer_id, page_size)`, as a plain function pointer.
pub type OrderPage = for<'p> fn(&'p PgPool, i64, i64) -> BoxFuture<'p, Answer>;

/// The code of one variant: its endpoint.
#[derive(Clone, Copy)]
pub struct Code {
    /// The endpoint.
    pub order_page: OrderPage,
}

/// The [`Code`] of a module that has `order_page(&PgPool, i64, i64)`:
/// `code_of!(fixed)`. The exercise's binary and the tests use it for code
/// that is not in this library.
#[macro_export]
macro_rules! code_of {
    ($code:ident) => {{
        fn order_page(
            pool: &$crate::PgPool,
            customer_id: i64,
            page_size: i64,
        ) -> $crate::BoxFuture<'_, $crate::Answer> {
            ::std::boxed::Box::pin($code::order_page(pool, customer_id, page_size))
        }
        $crate::Code { order_page }
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "n-plus-one",
    title: "N+1 queries",
    summary: "The order-history page takes longer the more orders it shows, yet every query is fast and the database's CPU is idle.",
    services: &[Service::Postgres],
    signal_metric: "statements_per_page",
    key_metrics: &[
        "p50_ms_page_20",
        "p50_ms_page_100",
        "statements_per_page_20",
        "statements_per_page_100",
        "statements_per_page",
        "db_ms_per_page",
        "rows_per_page",
        "wrong_answers",
        "stale_answers",
    ],
    live_gauges: &["statements_per_page", "statements_per_second", "ms_per_statement"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The N+1 scenario, running its buggy and fixed code, or a candidate's
/// (the learner's exercise, a test's wrong fix) as the exercise.
pub struct NPlusOne {
    candidate: Option<Code>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: NPlusOne = NPlusOne { candidate: None };

impl NPlusOne {
    /// The scenario with `code` as what its exercise variant runs.
    pub const fn with_candidate(code: Code) -> NPlusOne {
        NPlusOne {
            candidate: Some(code),
        }
    }

    /// The code a run of `variant` uses.
    pub fn code(&self, variant: Variant) -> Result<Code> {
        variant.pick(INFO.id, code_of!(buggy), code_of!(fixed), self.candidate)
    }
}

impl Scenario for NPlusOne {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let code = self.code(ctx.variant())?;
            let figures = workload::run_pages(ctx, code).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
