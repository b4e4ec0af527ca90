//! # Retry storm: after a brief warehouse outage, orders never get through again
//!
//! A shop's order service reserves each order's items at the warehouse
//! service (another team's, a network call away) and records the outcome in
//! PostgreSQL. The warehouse serves a few orders at a time and queues a few
//! dozen more; the order service gives it a third of its capacity at lunchtime.
//!
//! Then the warehouse is down for 0.7 s — a deploy. It comes back,
//! and yet no order gets through any more: the warehouse's team sees it
//! flooded with a hundred times the usual traffic, its queue full, its
//! workers busy, until the order service is restarted.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must still (checked in
//! [`verdict`] from evidence the variant cannot forge — the warehouse's own
//! books and the `reservations` table):
//!
//! - treat the warehouse as a shared dependency: at most 4 attempts reach it
//!   per order, counted by the warehouse, across the run and its outage;
//! - ride out a brief outage: an order that arrives while the warehouse is
//!   down is reserved once it is back, and the orders that arrive after it
//!   is back are reserved (95% at least);
//! - answer every caller: no order is retried without end, none is sent more
//!   than 12 times;
//! - record every answered order's outcome exactly once in `reservations`:
//!   `reserved` with the ticket the warehouse issued for that order (the
//!   caller gets the same ticket), or `failed`.
//!
//! The run is laid out in [`workload`] (the lunchtime orders and the
//! warehouse), [`probes`] (its books, the audit of the table, the evidence)
//! and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use debuglab_harness::downstream::Client;
use debuglab_harness::postgres::PgPool;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

/// Why the warehouse gave no ticket for one attempt: its queue was full
/// (`Busy`), it was down (`Unavailable`), it did not answer within the
/// client's timeout (`TimedOut`), or the connection failed.
pub use debuglab_harness::downstream::CallError as WarehouseError;

pub use workload::{ATTEMPT_TIMEOUT, DB_POOL, ORDERS, WAREHOUSE};

/// The service's dependencies, built by the harness and handed to the variant.
pub struct Shop {
    /// PostgreSQL: the `reservations` table.
    pub db: PgPool,
    /// The warehouse service.
    pub warehouse: Warehouse,
}

/// The warehouse service's client, as the order service's platform team
/// ships it: one call is one attempt, with its own timeout.
pub struct Warehouse {
    client: Client,
}

impl Warehouse {
    /// A client of the warehouse behind `client`.
    pub fn new(client: Client) -> Warehouse {
        Warehouse { client }
    }

    /// Asks the warehouse to reserve `order`'s items: the ticket it issued,
    /// or why it did not. Reserving an order twice returns the same ticket.
    pub async fn reserve(&self, order: &Order) -> std::result::Result<String, WarehouseError> {
        self.client.call(&order.key()).await
    }
}

/// One order to reserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The order's id, unique in a run.
    pub id: i64,
    /// What is ordered.
    pub item_id: i64,
    /// How many.
    pub quantity: i32,
}

impl Order {
    /// How the warehouse knows the order.
    pub fn key(&self) -> String {
        order_key(self.id)
    }
}

/// The warehouse's key for order `id`.
pub fn order_key(id: i64) -> String {
    format!("order-{id}")
}

/// What a reserved order returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The order.
    pub order_id: i64,
    /// The warehouse's ticket.
    pub ticket: String,
}

/// Why an order was not reserved.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The warehouse did not reserve it.
    #[error("warehouse: {0}")]
    Warehouse(#[from] WarehouseError),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The schema (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// A variant's `reserve_stock`, as a plain function pointer.
pub type ReserveStock =
    for<'s> fn(&'s Shop, &'s Order) -> BoxFuture<'s, std::result::Result<Reservation, ShopError>>;

/// The [`ReserveStock`] of a module that has a `reserve_stock(&Shop, &Order)`:
/// `reserve_stock_of!(fixed)`. The exercise's binary and the tests use it
/// for code that is not in this library.
#[macro_export]
macro_rules! reserve_stock_of {
    ($code:ident) => {{
        fn reserve_stock<'s>(
            shop: &'s $crate::Shop,
            order: &'s $crate::Order,
        ) -> $crate::BoxFuture<'s, ::std::result::Result<$crate::Reservation, $crate::ShopError>>
        {
            ::std::boxed::Box::pin($code::reserve_stock(shop, order))
        }
        reserve_stock as $crate::ReserveStock
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "retry-storm",
    title: "Retry storm",
    summary: "After a brief warehouse outage, orders never get through again: the warehouse is flooded with a hundred times the usual traffic.",
    services: &[Service::Postgres],
    signal_metric: "amplification",
    key_metrics: &[
        "amplification",
        "reserved_after_outage_pct",
        "orders_unfinished",
        "warehouse_attempts",
        "attempts_peak_per_100ms",
        "served_to_nobody",
        "recovery_ms",
        "orders_failed",
        "most_attempts_for_one_order",
    ],
    live_gauges: &["attempts_per_100ms", "warehouse_queue", "orders_in_flight"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The retry-storm scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct RetryStorm {
    candidate: Option<ReserveStock>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: RetryStorm = RetryStorm { candidate: None };

impl RetryStorm {
    /// The scenario with `reserve_stock` as the code its exercise variant runs.
    pub const fn with_candidate(reserve_stock: ReserveStock) -> RetryStorm {
        RetryStorm {
            candidate: Some(reserve_stock),
        }
    }

    /// The `reserve_stock` a run of `variant` uses.
    pub fn reserve_stock(&self, variant: Variant) -> Result<ReserveStock> {
        variant.pick(
            INFO.id,
            reserve_stock_of!(buggy),
            reserve_stock_of!(fixed),
            self.candidate,
        )
    }
}

impl Scenario for RetryStorm {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> futures::future::BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let reserve_stock = self.reserve_stock(ctx.variant())?;
            let figures = workload::run_lunchtime(ctx, reserve_stock).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
