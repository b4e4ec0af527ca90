//! Lunchtime: orders arrive every 10 ms (a third of the warehouse's
//! capacity), whether or not earlier ones have been answered, and the
//! warehouse is down from 300 ms to 1,000 ms. The warehouse, its client's timeout and the pool
//! are fixed here, not in the variant.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

/// 170 orders, one every [`ORDER_PACE`] (the last at 1.69 s), never more
/// than 500 waiting for an answer; orders still unanswered 5 s after the
/// first are cut off (the run stops waiting sooner for orders retried
/// without a limit: see [`crate::probes::Watch`]).
pub const ORDERS: Workload = Workload {
    requests: 170,
    concurrency: 500,
    max_duration: Duration::from_secs(5),
    hard_limit: Duration::from_secs(5),
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

/// The orders started so far, and those waiting for an answer.
#[derive(Default)]
pub struct InFlight {
    started: AtomicUsize,
    waiting: Mutex<HashSet<i64>>,
}

impl InFlight {
    /// How many orders have started.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// How many orders are waiting for an answer now.
    pub fn waiting_count(&self) -> usize {
        lock(&self.waiting).len()
    }

    /// The orders waiting for an answer now.
    pub fn waiting(&self) -> Vec<i64> {
        lock(&self.waiting).iter().copied().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counts one order waiting for its answer for as long as it lives (an
/// order cut off is counted out too).
struct Waiting(Arc<InFlight>, i64);

impl Waiting {
    fn enter(in_flight: &Arc<InFlight>, order_id: i64) -> Waiting {
        in_flight.started.fetch_add(1, Ordering::Relaxed);
        lock(&in_flight.waiting).insert(order_id);
        Waiting(Arc::clone(in_flight), order_id)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(&self.0.waiting).remove(&self.1);
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
    /// What it was told; `None` if the run stopped waiting for it (it was
    /// still being retried, see [`crate::probes::Watch`]).
    pub result: Option<std::result::Result<Reservation, ShopError>>,
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
    let in_flight = Arc::new(InFlight::default());
    let watch = Watch::start(ctx, &warehouse, &in_flight);
    let stop_waiting = watch.stop_waiting();
    let first_order = warehouse.elapsed();
    let outcome = {
        let (shop, clock, in_flight, seed) = (
            Arc::clone(&shop),
            Arc::clone(&warehouse),
            Arc::clone(&in_flight),
            ctx.seed(),
        );
        ctx.drive_paced("orders", ORDERS, ORDER_PACE, move |index| {
            let (shop, clock, in_flight, mut stop_waiting) = (
                Arc::clone(&shop),
                Arc::clone(&clock),
                Arc::clone(&in_flight),
                stop_waiting.clone(),
            );
            async move {
                let order = order(seed, index);
                let arrived = clock.elapsed();
                let waiting = Waiting::enter(&in_flight, order.id);
                let result = tokio::select! {
                    biased;
                    result = reserve_stock(&shop, &order) => Some(result),
                    () = async {
                        if stop_waiting.wait_for(|stop| *stop).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => None,
                };
                drop(waiting);
                let answered = Answered {
                    order_id: order.id,
                    arrived,
                    answered: clock.elapsed(),
                    result,
                };
                if matches!(answered.result, Some(Ok(_))) {
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
    ctx.within(
        "the warehouse's last attempts",
        Duration::from_secs(5),
        warehouse.idle(),
    )
    .await;
    let watched = watch.stop().await;
    let books = warehouse.books();
    let rows = probes::read_reservations(&database).await?;
    shop.db.close().await;
    let figures = probes::figures(&outcome, &books, &rows, first_order);
    probes::record(ctx, &figures, &books, &watched);
    Ok(figures)
}
