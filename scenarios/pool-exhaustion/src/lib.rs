//! # Pool exhaustion: connections held across a slow call
//!
//! A shop's checkout endpoint counts the order for the user in Redis, prices
//! it in PostgreSQL, has the payment provider authorise the amount (another
//! service, ~150 ms away), records the order and caches its status.
//!
//! Under a sale's traffic — 50 checkouts in flight against pools of 5 — it
//! falls over: requests wait, then fail with pool timeouts, while the
//! database shows its connections `idle in transaction`. In Rust a connection
//! goes back to its pool when it is dropped; the buggy code simply keeps both
//! connections (and a transaction) alive across the payment call, so each
//! checkout occupies a connection for 150 ms instead of 2.
//!
//! A run drives the checkout against pools the harness builds (their sizes and
//! timeouts are fixed here, not in the variant), samples both pools while it
//! runs, snapshots `pg_stat_activity`, and checks every receipt and the orders
//! recorded.

pub mod buggy;
pub mod exercise;
pub mod fixed;

use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::postgres::{ActivityRow, PgPool, RunDatabase};
use debuglab_harness::sampler::sample_every;
use debuglab_harness::workload::{drive, Workload};
use debuglab_harness::{
    PoolSettings, Result, RunContext, Scenario, ScenarioInfo, Service, Variant, Verdict,
};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::migrate::Migrator;

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

/// The payment provider: a remote service that answers after `latency`.
pub struct Payments {
    latency: Duration,
}

impl Payments {
    /// A provider that takes `latency` to answer each call.
    pub fn new(latency: Duration) -> Payments {
        Payments { latency }
    }

    /// Authorises charging `amount_cents` to `user_id`; returns the authorisation id.
    pub async fn authorize(&self, user_id: i64, amount_cents: i64) -> Result<String, ShopError> {
        // The provider's round trip; nothing local happens meanwhile.
        tokio::time::sleep(self.latency).await;
        Ok(format!("auth-{user_id}-{amount_cents}"))
    }
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

/// The PostgreSQL pool: small, with a short acquire timeout, as in production.
pub const DB_POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: Duration::from_secs(1),
};

/// The Redis pool: the same size and wait timeout.
pub const CACHE_POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: Duration::from_secs(1),
};

/// How long the payment provider takes to answer.
pub const PAYMENT_LATENCY: Duration = Duration::from_millis(150);

/// The sale: 200 checkouts, 50 in flight at once (ten times the pool size).
pub const WORKLOAD: Workload = Workload {
    requests: 200,
    concurrency: 50,
    max_duration: Duration::from_secs(10),
    hard_limit: Duration::from_secs(30),
};

/// The objective: 99% of checkouts answer within this many milliseconds.
pub const P99_OBJECTIVE_MS: f64 = 500.0;

static INFO: ScenarioInfo = ScenarioInfo {
    id: "pool-exhaustion",
    title: "Pool exhaustion",
    summary: "Checkout holds its pooled connections across a slow payment call; under load the pools run dry.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "pool_timeouts",
    key_metrics: &["pool_timeouts", "db_pool_timeouts", "cache_pool_timeouts", "p99_ms", "max_waiters", "mean_waiters", "idle_in_transaction_max", "succeeded"],
    readme: include_str!("../README.md"),
};

/// The pool-exhaustion scenario.
pub struct PoolExhaustion;

/// The scenario, for the CLI's list.
pub static SCENARIO: PoolExhaustion = PoolExhaustion;

impl Scenario for PoolExhaustion {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(run(ctx))
    }
}

/// A variant's `place_order`, as a plain function pointer.
pub type PlaceOrder = for<'s> fn(
    &'s Shop,
    &'s OrderRequest,
) -> BoxFuture<'s, std::result::Result<Receipt, ShopError>>;

macro_rules! place_order_of {
    ($variant:ident) => {{
        fn place_order<'s>(
            shop: &'s Shop,
            order: &'s OrderRequest,
        ) -> BoxFuture<'s, std::result::Result<Receipt, ShopError>> {
            Box::pin($variant::place_order(shop, order))
        }
        place_order as PlaceOrder
    }};
}

/// The `place_order` of `variant`.
pub fn place_order_of(variant: Variant) -> PlaceOrder {
    match variant {
        Variant::Buggy => place_order_of!(buggy),
        Variant::Fixed => place_order_of!(fixed),
        Variant::Exercise => place_order_of!(exercise),
    }
}

/// Random checkouts: 50 users, every product, one to five items.
pub fn random_orders(seed: u64, count: usize) -> Vec<OrderRequest> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| OrderRequest {
            user_id: rng.random_range(1..=50),
            product_id: rng.random_range(1..=PRODUCTS),
            quantity: rng.random_range(1..=5),
        })
        .collect()
}

/// What a correct checkout of `order` returns, apart from ids and counters.
fn receipt_is_right(order: &OrderRequest, receipt: &Receipt) -> bool {
    let Some(price) = seeded_price_cents(order.product_id) else {
        return false;
    };
    let total = price * i64::from(order.quantity);
    receipt.total_cents == total
        && receipt.authorization == format!("auth-{}-{total}", order.user_id)
}

/// The two pools at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct PoolSample {
    db_in_use: usize,
    cache_in_use: usize,
    cache_waiting: usize,
}

/// `pg_stat_activity` at one moment.
struct ActivitySample {
    rows: Vec<ActivityRow>,
}

impl ActivitySample {
    fn idle_in_transaction(&self) -> usize {
        self.rows
            .iter()
            .filter(|row| row.state.as_deref() == Some("idle in transaction"))
            .count()
    }
}

async fn run(ctx: &RunContext) -> Result<Verdict> {
    let place_order = place_order_of(ctx.variant());
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let redis = ctx.redis().await?;
    let shop = Arc::new(Shop {
        db: database.pool(DB_POOL).await?,
        cache: redis.pool(CACHE_POOL).await?,
        payments: Payments::new(PAYMENT_LATENCY),
    });

    // Watch both pools and the database while the sale runs.
    let pools = {
        let shop = Arc::clone(&shop);
        sample_every(Duration::from_millis(20), move || {
            let shop = Arc::clone(&shop);
            async move {
                let cache = shop.cache.status();
                PoolSample {
                    db_in_use: (shop.db.size() as usize).saturating_sub(shop.db.num_idle()),
                    cache_in_use: cache.size.saturating_sub(cache.available),
                    cache_waiting: cache.waiting,
                }
            }
        })
    };
    let activity = {
        let database = database.clone();
        sample_every(Duration::from_millis(100), move || {
            let database = database.clone();
            async move {
                ActivitySample {
                    rows: database.activity().await.unwrap_or_default(),
                }
            }
        })
    };

    let orders = Arc::new(random_orders(ctx.seed(), WORKLOAD.requests));
    let outcome = {
        let (shop, orders) = (Arc::clone(&shop), Arc::clone(&orders));
        drive("checkouts", WORKLOAD, move |index| {
            let (shop, orders) = (Arc::clone(&shop), Arc::clone(&orders));
            async move { place_order(&shop, &orders[index]).await }
        })
        .await
    };
    let pool_samples = pools.stop().await;
    let activity_samples = activity.stop().await;

    // What happened to the checkouts.
    let latencies = outcome.latencies();
    let (mut db_timeouts, mut cache_timeouts, mut other_errors, mut wrong_receipts, mut succeeded) =
        (0, 0, 0, 0, 0);
    let mut first_timeout = None;
    let mut first_other_error = None;
    for record in &outcome.records {
        match &record.result {
            Ok(receipt) => {
                succeeded += 1;
                if !receipt_is_right(&orders[record.index], receipt) {
                    wrong_receipts += 1;
                }
            }
            Err(error) => match error.pool_timeout() {
                Some(service) => {
                    if service == Service::Postgres {
                        db_timeouts += 1;
                    } else {
                        cache_timeouts += 1;
                    }
                    first_timeout.get_or_insert_with(|| format!("{service} pool: {error}"));
                }
                None => {
                    other_errors += 1;
                    first_other_error.get_or_insert_with(|| error.to_string());
                }
            },
        }
    }
    let orders_recorded = count_orders(&database).await?;
    let pool_timeouts = db_timeouts + cache_timeouts;
    let p50 = latencies.p50_ms().unwrap_or(0.0);
    let p99 = latencies.p99_ms().unwrap_or(0.0);
    let max_of = |pick: fn(&PoolSample) -> usize| {
        pool_samples
            .iter()
            .map(|sample| pick(&sample.value))
            .max()
            .unwrap_or(0)
    };
    let max_waiters = max_of(|sample| sample.cache_waiting);
    // A burst of waiters when 50 requests arrive at once is normal; waiters
    // that stay are the symptom, so the mean tells them apart.
    let mean_waiters = pool_samples
        .iter()
        .map(|sample| sample.value.cache_waiting as f64)
        .sum::<f64>()
        / pool_samples.len().max(1) as f64;
    let db_in_use_max = max_of(|sample| sample.db_in_use);
    let cache_in_use_max = max_of(|sample| sample.cache_in_use);
    let backends_max = activity_samples
        .iter()
        .map(|sample| sample.value.rows.len())
        .max()
        .unwrap_or(0);
    let idle_in_transaction_max = activity_samples
        .iter()
        .map(|sample| sample.value.idle_in_transaction())
        .max()
        .unwrap_or(0);

    ctx.metric("requests", WORKLOAD.requests as f64);
    ctx.metric("succeeded", succeeded as f64);
    ctx.metric("pool_timeouts", pool_timeouts as f64);
    ctx.metric("db_pool_timeouts", db_timeouts as f64);
    ctx.metric("cache_pool_timeouts", cache_timeouts as f64);
    ctx.metric("other_errors", other_errors as f64);
    ctx.metric("unfinished", outcome.unfinished as f64);
    ctx.metric("wrong_receipts", wrong_receipts as f64);
    ctx.metric("orders_recorded", orders_recorded as f64);
    ctx.metric("p50_ms", p50);
    ctx.metric("p99_ms", p99);
    ctx.metric("max_ms", latencies.max_ms().unwrap_or(0.0));
    ctx.metric("max_waiters", max_waiters as f64);
    ctx.metric("mean_waiters", (mean_waiters * 10.0).round() / 10.0);
    ctx.metric("db_in_use_max", db_in_use_max as f64);
    ctx.metric("cache_in_use_max", cache_in_use_max as f64);
    ctx.metric("db_backends_max", backends_max as f64);
    ctx.metric("idle_in_transaction_max", idle_in_transaction_max as f64);

    ctx.evidence(format!(
        "{} checkouts, {} in flight (seed {}), payment provider {} ms: {succeeded} succeeded, {pool_timeouts} pool timeouts, {other_errors} other errors; latency p50 {p50:.0} ms, p99 {p99:.0} ms (objective p99 <= {P99_OBJECTIVE_MS:.0} ms)",
        WORKLOAD.requests,
        WORKLOAD.concurrency,
        ctx.seed(),
        PAYMENT_LATENCY.as_millis()
    ));
    ctx.evidence(format!(
        "PostgreSQL pool ({} connections, {} s acquire timeout): up to {db_in_use_max} in use, {db_timeouts} acquire timeouts (PoolTimedOut)",
        DB_POOL.max_connections,
        DB_POOL.acquire_timeout.as_secs()
    ));
    ctx.evidence(format!(
        "Redis pool, deadpool status ({} connections, {} s wait timeout): up to {cache_in_use_max} in use, up to {max_waiters} requests waiting ({mean_waiters:.1} on average), {cache_timeouts} wait timeouts",
        CACHE_POOL.max_connections,
        CACHE_POOL.acquire_timeout.as_secs()
    ));
    ctx.evidence(format!(
        "Redis pool waiting over time: {}",
        timeline(&pool_samples, |sample| sample.cache_waiting)
    ));
    if let Some(timeout) = &first_timeout {
        ctx.evidence(format!("first pool timeout: {timeout}"));
    }
    if let Some(error) = &first_other_error {
        ctx.evidence(format!("first other error: {error}"));
    }
    if let Some(busiest) = activity_samples
        .iter()
        .max_by_key(|sample| (sample.value.idle_in_transaction(), sample.value.rows.len()))
    {
        ctx.evidence(format!(
            "pg_stat_activity at {} ms: {} connections, {} idle in transaction",
            busiest.at.as_millis(),
            busiest.value.rows.len(),
            busiest.value.idle_in_transaction()
        ));
        for row in busiest.value.rows.iter().take(5) {
            ctx.evidence(format!("pg_stat_activity: {row}"));
        }
    }
    if outcome.cut_off {
        ctx.evidence(format!(
            "{} checkouts hung and were cut off",
            outcome.unfinished
        ));
    }

    shop.db.close().await;
    Ok(verdict(&Judged {
        pool_timeouts,
        other_errors,
        unfinished: outcome.unfinished,
        p99,
        succeeded,
        wrong_receipts,
        orders_recorded,
        backends_max,
        idle_in_transaction_max,
    }))
}

async fn count_orders(database: &RunDatabase) -> Result<i64> {
    let mut conn = database.probe_connection().await?;
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut conn)
        .await
        .map_err(debuglab_harness::HarnessError::postgres("counting orders"))
}

/// A few points of a sampled figure: `0 ms: 0, 200 ms: 45, …`.
fn timeline(
    samples: &[debuglab_harness::sampler::Sample<PoolSample>],
    pick: fn(&PoolSample) -> usize,
) -> String {
    let step = (samples.len() / 8).max(1);
    samples
        .iter()
        .step_by(step)
        .map(|sample| format!("{} ms: {}", sample.at.as_millis(), pick(&sample.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Judged {
    pool_timeouts: usize,
    other_errors: usize,
    unfinished: usize,
    p99: f64,
    succeeded: usize,
    wrong_receipts: usize,
    orders_recorded: i64,
    backends_max: usize,
    idle_in_transaction_max: usize,
}

fn verdict(judged: &Judged) -> Verdict {
    let mut problems = Vec::new();
    if judged.pool_timeouts > 0 {
        problems.push(format!(
            "{} checkouts failed waiting for a pooled connection",
            judged.pool_timeouts
        ));
    }
    if judged.p99 > P99_OBJECTIVE_MS {
        problems.push(format!(
            "the p99 latency {:.0} ms is over the {P99_OBJECTIVE_MS:.0} ms objective",
            judged.p99
        ));
    }
    if judged.unfinished > 0 {
        problems.push(format!("{} checkouts hung", judged.unfinished));
    }
    if judged.other_errors > 0 {
        problems.push(format!(
            "{} checkouts failed for other reasons",
            judged.other_errors
        ));
    }
    if judged.wrong_receipts > 0 {
        problems.push(format!("{} receipts were wrong", judged.wrong_receipts));
    }
    if judged.orders_recorded != judged.succeeded as i64 {
        problems.push(format!(
            "{} orders were recorded for {} successful checkouts",
            judged.orders_recorded, judged.succeeded
        ));
    }
    if judged.backends_max > DB_POOL.max_connections as usize {
        problems.push(format!(
            "{} connections were open to the database, more than the pool's {}",
            judged.backends_max, DB_POOL.max_connections
        ));
    }
    if !problems.is_empty() && judged.idle_in_transaction_max > 0 {
        problems.push(format!(
            "up to {} database connections sat idle in transaction",
            judged.idle_in_transaction_max
        ));
    }
    Verdict::from_problems(&problems, || {
        format!(
            "All {} checkouts succeeded with no pool timeouts; p99 latency {:.0} ms is within the {P99_OBJECTIVE_MS:.0} ms objective with the same pools of {}.",
            judged.succeeded, judged.p99, DB_POOL.max_connections
        )
    })
}
