//! Lunchtime: orders arrive every 10 ms (a third of the warehouse's
//! capacity), whether or not earlier ones have been answered, and the
//! warehouse is down from 300 ms to 1,000 ms. The warehouse, its client's timeout and the pool
//! are fixed here, not in the variant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::downstream::{Downstream, Outage, Settings};
use debuglab_harness::workload::Workload;
use debuglab_harness::{PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::probes::{self, Watch};
use crate::verdict::Figures;
use crate::{Order, Reservation, ReserveStock, Shop, ShopError, Warehouse, BASE_MIGRATIONS};

/// The warehouse: 6 workers, 20 ms an order (300 orders a second), 60 more
/// may wait; down for 0.7 s at 300 ms (a deploy).
pub const WAREHOUSE: Settings = Settings {
    workers: 6,
    service_time: Duration::from_millis(20),
    queue_bound: 60,
    outage: Some(Outage {
        start: Duration::from_millis(300),
        length: Duration::from_millis(700),
    }),
    bucket: Duration::from_millis(100),
};

/// How long the warehouse's client waits for one answer before it hangs up:
/// five times a served order's time, half a full queue's wait.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

/// One order every 10 ms: 100 a second, a third of the warehouse's capacity.
pub const ORDER_PACE: Duration = Duration::from_millis(10);

/// The PostgreSQL pool the outcomes are recorded through.
pub const DB_POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: Duration::from_secs(5),
};

/// 190 orders, one every [`ORDER_PACE`] (the last at 1.89 s), never more
/// than 500 waiting for an answer; orders still unanswered 2.5 s after the
/// first are cut off.
pub const ORDERS: Workload = Workload {
    requests: 190,
    concurrency: 500,
    max_duration: Duration::from_millis(2500),
    hard_limit: Duration::from_millis(2500),
    live_rate: 100,
};

/// Order number `index` of a run with `seed` (its id is `index + 1`).
pub fn order(seed: u64, index: usize) -> Order {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    Order {
        id: index as i64 + 1,
        item_id: rng.random_range(1..=500),
        quantity: rng.random_range(1..=4),
    }
}

/// Counts one order waiting for its answer for as long as it lives (an
/// order cut off at the hard limit is counted out too).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn enter(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(Arc::clone(count))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One order, as its caller saw it, on the warehouse's clock.
#[derive(Debug)]
pub struct Answered {
    /// The order.
    pub order_id: i64,
    /// When the caller asked.
    pub arrived: Duration,
    /// When it was answered.
    pub answered: Duration,
    /// What it was told.
    pub result: std::result::Result<Reservation, ShopError>,
}

/// Runs lunchtime against `reserve_stock`, audits the warehouse's books and
/// the table, and returns the figures the verdict is made of (also recorded
/// on `ctx`).
pub async fn run_lunchtime(ctx: &RunContext, reserve_stock: ReserveStock) -> Result<Figures> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    let db = database.pool(DB_POOL).await?;
    // The warehouse's clock starts here, just before the first order.
    let warehouse = Arc::new(Downstream::start(WAREHOUSE)?);
    let shop = Arc::new(Shop {
        db,
        warehouse: Warehouse::new(warehouse.client(ATTEMPT_TIMEOUT)),
    });
    let in_flight = Arc::new(AtomicUsize::new(0));
    let watch = Watch::start(ctx, &warehouse, &in_flight);
    let first_order = warehouse.elapsed();
    let outcome = {
        let (shop, clock, in_flight, seed) =
            (Arc::clone(&shop), Arc::clone(&warehouse), in_flight, ctx.seed());
        ctx.drive_paced("orders", ORDERS, ORDER_PACE, move |index| {
            let (shop, clock, in_flight) =
                (Arc::clone(&shop), Arc::clone(&clock), Arc::clone(&in_flight));
            async move {
                let order = order(seed, index);
                let arrived = clock.elapsed();
                let waiting = Waiting::enter(&in_flight);
                let result = reserve_stock(&shop, &order).await;
                drop(waiting);
                let answered = Answered {
                    order_id: order.id,
                    arrived,
                    answered: clock.elapsed(),
                    result,
                };
                if answered.result.is_ok() {
                    Ok(answered)
                } else {
                    Err(answered)
                }
            }
        })
        .await
    };
    // Attempts whose callers hung up are still being served: wait for the
    // warehouse to finish them, so that its books are complete.
    ctx.within("the warehouse's last attempts", Duration::from_secs(5), warehouse.idle())
        .await;
    let watched = watch.stop().await;
    let books = warehouse.books();
    let rows = probes::read_reservations(&database).await?;
    shop.db.close().await;
    let figures = probes::figures(&outcome, &books, &rows, first_order);
    probes::record(ctx, &figures, &books, &watched);
    Ok(figures)
}
