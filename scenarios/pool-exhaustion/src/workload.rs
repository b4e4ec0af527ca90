//! The sale: 200 checkouts, 50 in flight, against pools of 5 that the
//! harness builds (their sizes and timeouts are fixed here, not in the
//! variant).

use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{PoolSettings, Result, RunContext, Service};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::probes::{self, Watch};
use crate::verdict::{Checkouts, Figures};
use crate::{
    seeded_price_cents, OrderRequest, Payments, PlaceOrder, Receipt, Shop, ShopError,
    BASE_MIGRATIONS, PRODUCTS,
};

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
    live_rate: 100,
};

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

/// Runs the sale against `place_order`, watches it, audits the stores, and
/// returns the figures the verdict is made of (also recorded on `ctx`).
pub async fn run_sale(ctx: &RunContext, place_order: PlaceOrder) -> Result<Figures> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let redis = ctx.redis().await?;
    let shop = Arc::new(Shop {
        db: database.pool(DB_POOL).await?,
        cache: redis.pool(CACHE_POOL).await?,
        payments: Payments::new(PAYMENT_LATENCY),
    });
    let watch = Watch::start(ctx, &shop, &database, &redis);
    let orders = Arc::new(random_orders(ctx.seed(), WORKLOAD.requests));
    let outcome = {
        let (shop, orders) = (Arc::clone(&shop), Arc::clone(&orders));
        ctx.drive("checkouts", WORKLOAD, move |index| {
            let (shop, orders) = (Arc::clone(&shop), Arc::clone(&orders));
            async move { place_order(&shop, &orders[index % orders.len()]).await }
        })
        .await
    };
    let watched = watch.stop().await;
    let checkouts = tally(&outcome, &orders, &shop.payments);
    let orders_audit = probes::audit_orders(&database, &shop.payments).await?;
    let redis_audit = probes::audit_redis(&redis, &orders_audit.order_ids).await?;
    shop.db.close().await;
    let figures = Figures {
        checkouts,
        provider_calls: shop.payments.calls(),
        provider_most_in_flight: shop.payments.most_in_flight(),
        orders: orders_audit,
        redis: redis_audit,
        pools: watched.summary(),
    };
    probes::record(ctx, &figures, &watched);
    probes::record_plots(ctx, &outcome, &watched, &shop.payments);
    Ok(figures)
}

/// What happened to the checkouts, as the clients saw it.
fn tally(
    outcome: &WorkloadOutcome<Receipt, ShopError>,
    orders: &[OrderRequest],
    payments: &Payments,
) -> Checkouts {
    let latencies = outcome.latencies();
    let mut checkouts = Checkouts {
        planned: WORKLOAD.requests,
        concurrency: WORKLOAD.concurrency,
        unfinished: outcome.unfinished,
        p50_ms: latencies.p50_ms().unwrap_or(0.0),
        p99_ms: latencies.p99_ms().unwrap_or(0.0),
        ..Checkouts::default()
    };
    for record in &outcome.records {
        match &record.result {
            Ok(receipt) => {
                checkouts.succeeded += 1;
                let order = &orders[record.index % orders.len()];
                if !receipt_is_right(order, receipt, payments) {
                    checkouts.wrong_receipts += 1;
                }
            }
            Err(error) => match error.pool_timeout() {
                Some(Service::Postgres) => checkouts.db_pool_timeouts += 1,
                Some(_) => checkouts.cache_pool_timeouts += 1,
                None => {
                    checkouts.other_errors += 1;
                    checkouts
                        .first_error
                        .get_or_insert_with(|| error.to_string());
                }
            },
        }
        if let Err(error) = &record.result {
            if error.pool_timeout().is_some() {
                checkouts
                    .first_timeout
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
    checkouts
}

/// Whether `receipt` charges the right total, under an authorisation the
/// provider issued for that user and amount.
fn receipt_is_right(order: &OrderRequest, receipt: &Receipt, payments: &Payments) -> bool {
    let Some(price) = seeded_price_cents(order.product_id) else {
        return false;
    };
    let total = price * i64::from(order.quantity);
    let authorised = payments
        .issued(&receipt.authorization)
        .is_some_and(|auth| auth.user_id == order.user_id && auth.amount_cents == total);
    receipt.total_cents == total && authorised && receipt.orders_today >= 1
}
