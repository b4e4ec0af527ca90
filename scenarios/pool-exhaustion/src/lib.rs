//! # Pool exhaustion: checkout falls over during a sale
//!
//! A shop's checkout endpoint counts the order for the user in Redis, prices
//! it in PostgreSQL, has the payment provider authorise the amount (another
//! service, about 150 ms away), records the order and caches its status.
//!
//! During a sale — 50 checkouts in flight — requests wait, then fail with
//! pool timeouts, although neither PostgreSQL nor Redis is busy.
//!
//! ## The contract
//!
//! Whatever the code looks like, the endpoint must still, for every
//! successful checkout (checked in [`verdict`] from evidence the variant
//! cannot forge):
//!
//! - be authorised by the payment provider exactly once — the provider counts
//!   its calls and issues the authorisation ids ([`Payments`]) — and be
//!   recorded as one order carrying that authorisation;
//! - leave its Redis side effects: the user's `orders_today:<user>` counter,
//!   and `order_status:<order>` = `paid` with an expiry;
//! - keep up with the sale: the payment provider answers at least 10 calls
//!   at once while 50 checkouts are in flight (its own count, not a time);
//! - answer without failing for a pooled connection, 99% within 3 s;
//! - use the pools as the harness built them (5 connections, 1 s wait, read
//!   back at the end), and never more database or Redis connections than that.
//!
//! The run is laid out in [`workload`] (the sale), [`probes`] (what is
//! watched and audited) and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use debuglab_harness::plot::millis;
use debuglab_harness::postgres::PgPool;
use debuglab_harness::workload::RequestClock;
use debuglab_harness::{
    Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;

pub use verdict::P99_OBJECTIVE_MS;
pub use workload::{CACHE_POOL, DB_POOL, PAYMENT_LATENCY, WORKLOAD};

/// The service's dependencies, built by the harness and handed to the variant.
pub struct Shop {
    /// PostgreSQL: products and orders.
    pub db: PgPool,
    /// Redis: per-user counters and order status.
    pub cache: deadpool_redis::Pool,
    /// The payment provider.
    pub payments: Payments,
}

/// One checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Who buys.
    pub user_id: i64,
    /// What (products 1 to 20 exist).
    pub product_id: i64,
    /// How many.
    pub quantity: i32,
}

/// What a successful checkout returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The recorded order's id.
    pub order_id: i64,
    /// Price times quantity.
    pub total_cents: i64,
    /// The payment provider's authorisation.
    pub authorization: String,
    /// How many checkouts the user started today, this one included.
    pub orders_today: i64,
}

/// Why a checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// PostgreSQL failed, or no connection came from the pool in time (`PoolTimedOut`).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No Redis connection came from the pool in time, or it could not be made.
    #[error("cache pool: {0}")]
    CachePool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("cache: {0}")]
    Cache(#[from] deadpool_redis::redis::RedisError),
    /// The product does not exist.
    #[error("unknown product {0}")]
    UnknownProduct(i64),
}

impl ShopError {
    /// Which pool ran dry, if this is a pool timeout.
    pub fn pool_timeout(&self) -> Option<Service> {
        match self {
            ShopError::Database(sqlx::Error::PoolTimedOut) => Some(Service::Postgres),
            ShopError::CachePool(deadpool_redis::PoolError::Timeout(_)) => Some(Service::Redis),
            _ => None,
        }
    }
}

/// An authorisation the payment provider issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// Whom it charges.
    pub user_id: i64,
    /// How much.
    pub amount_cents: i64,
}

/// The payment provider: a remote service that answers after `latency`.
///
/// It keeps its own books — how many authorisations it issued, to whom, and
/// how many calls it was answering at once — so that the run can check every
/// order against them.
pub struct Payments {
    latency: Duration,
    /// Makes authorisation ids unguessable, as a real provider's are.
    secret: u64,
    issued: Mutex<HashMap<String, Authorization>>,
    calls: AtomicU64,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
    /// When each request's call began and ended, in ms since the sale began.
    call_spans: Mutex<HashMap<usize, [f64; 2]>>,
}

/// Counts one call in flight at the provider for as long as it lives (a
/// cancelled call is counted out too).
struct InFlight<'p>(&'p Payments);

impl<'p> InFlight<'p> {
    fn enter(payments: &'p Payments) -> InFlight<'p> {
        let now = payments.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        payments.most_in_flight.fetch_max(now, Ordering::AcqRel);
        InFlight(payments)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Payments {
    /// A provider that takes `latency` to answer each call.
    pub fn new(latency: Duration) -> Payments {
        Payments {
            latency,
            secret: rand::random(),
            issued: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            most_in_flight: AtomicU64::new(0),
            call_spans: Mutex::new(HashMap::new()),
        }
    }

    /// Authorises charging `amount_cents` to `user_id`; returns the authorisation id.
    pub async fn authorize(&self, user_id: i64, amount_cents: i64) -> Result<String, ShopError> {
        let in_flight = InFlight::enter(self);
        let clock = RequestClock::current();
        let began = clock.map(|clock| millis(clock.now()));
        // The provider's round trip; nothing local happens meanwhile.
        tokio::time::sleep(self.latency).await;
        drop(in_flight);
        if let (Some(clock), Some(began)) = (clock, began) {
            let span = [began, millis(clock.now())];
            lock(&self.call_spans).insert(clock.index, span);
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!(
            "auth-{:016x}",
            self.secret.rotate_left(17) ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        lock(&self.issued).insert(
            id.clone(),
            Authorization {
                user_id,
                amount_cents,
            },
        );
        Ok(id)
    }

    /// How many authorisations the provider has issued.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The most calls the provider was answering at once.
    pub fn most_in_flight(&self) -> u64 {
        self.most_in_flight.load(Ordering::Relaxed)
    }

    /// The authorisation issued as `id`, if the provider issued it.
    pub fn issued(&self, id: &str) -> Option<Authorization> {
        lock(&self.issued).get(id).copied()
    }

    /// When each checkout's call was answered: `[began, ended]` in ms since
    /// the sale began, by request.
    pub fn call_spans(&self) -> HashMap<usize, [f64; 2]> {
        lock(&self.call_spans).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The price of product `id` as seeded by the migration.
pub fn seeded_price_cents(product_id: i64) -> Option<i64> {
    (1..=PRODUCTS)
        .contains(&product_id)
        .then(|| 199 + product_id * 100)
}

/// Products in the seeded catalogue.
pub const PRODUCTS: i64 = 20;

/// The schema and the catalogue (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// A variant's `place_order`, as a plain function pointer.
pub type PlaceOrder = for<'s> fn(
    &'s Shop,
    &'s OrderRequest,
) -> BoxFuture<'s, std::result::Result<Receipt, ShopError>>;

/// The [`PlaceOrder`] of a module that has a `place_order(&Shop, &OrderRequest)`:
/// `place_order_of!(fixed)`. The exercise's binary and the tests use it for
/// code that is not in this library.
#[macro_export]
macro_rules! place_order_of {
    ($code:ident) => {{
        fn place_order<'s>(
            shop: &'s $crate::Shop,
            order: &'s $crate::OrderRequest,
        ) -> $crate::BoxFuture<'s, ::std::result::Result<$crate::Receipt, $crate::ShopError>>
        {
            ::std::boxed::Box::pin($code::place_order(shop, order))
        }
        place_order as $crate::PlaceOrder
    }};
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "pool-exhaustion",
    title: "Pool exhaustion",
    summary: "During a sale, checkouts wait, then fail with pool timeouts, while PostgreSQL and Redis are nearly idle.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "pool_timeouts",
    key_metrics: &[
        "pool_timeouts",
        "db_pool_timeouts",
        "cache_pool_timeouts",
        "p99_ms",
        "mean_waiters",
        "idle_in_transaction_max",
        "succeeded",
        "provider_calls",
        "payments_in_flight_max",
    ],
    live_gauges: &["cache_waiting", "db_in_use", "idle_in_transaction"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The pool-exhaustion scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct PoolExhaustion {
    candidate: Option<PlaceOrder>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: PoolExhaustion = PoolExhaustion { candidate: None };

impl PoolExhaustion {
    /// The scenario with `place_order` as the code its exercise variant runs.
    pub const fn with_candidate(place_order: PlaceOrder) -> PoolExhaustion {
        PoolExhaustion {
            candidate: Some(place_order),
        }
    }

    /// The `place_order` a run of `variant` uses.
    pub fn place_order(&self, variant: Variant) -> Result<PlaceOrder> {
        variant.pick(
            INFO.id,
            place_order_of!(buggy),
            place_order_of!(fixed),
            self.candidate,
        )
    }
}

impl Scenario for PoolExhaustion {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> futures::future::BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let place_order = self.place_order(ctx.variant())?;
            let figures = workload::run_sale(ctx, place_order).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
