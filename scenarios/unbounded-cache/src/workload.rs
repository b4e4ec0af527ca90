//! The views: 10,000 of them, 8 at a time, Zipf-distributed over 100,000
//! products, against pools and a cache configuration the harness fixes (the
//! variant only receives them).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::alloc::heap_counter;
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{HarnessError, PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::probes::{self, Watch};
use crate::verdict::{Figures, Views};
use crate::{
    render_page, seeded_product, CacheConfig, ProductPageApi, ServiceError, CATALOGUE, PRODUCTS,
};

/// The configuration the service runs with: the app's, as in production.
pub const CONFIG: CacheConfig = CacheConfig {
    max_entries: 1_000,
    ttl: Duration::from_secs(60),
};

/// The configuration of the freshness check's instances: the same bound, a
/// TTL short enough to wait out.
pub const FRESHNESS_CONFIG: CacheConfig = CacheConfig {
    max_entries: CONFIG.max_entries,
    ttl: Duration::from_millis(250),
};

/// The pools the service gets (both stores).
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// The views: 10,000, 8 at a time; a live run keeps going at 100 a second,
/// which adds a few thousand new products a minute to the caches.
pub const WORKLOAD: Workload = Workload {
    requests: 10_000,
    concurrency: 8,
    max_duration: Duration::from_secs(60),
    hard_limit: Duration::from_secs(90),
    live_rate: 100,
};

/// Views in a run.
pub const REQUESTS: usize = WORKLOAD.requests;

/// One view in this many asks for a product that does not exist.
const MISSING_EVERY: usize = 100;

/// Zipf exponent: a few products get most views.
const SKEW: f64 = 1.1;

/// The product id of view `index` of the run seeded with `seed`: Zipf-ranked,
/// spread over the catalogue, now and then an id that does not exist.
///
/// Derived from the index alone, so a live run keeps meeting new products.
pub fn view_at(seed: u64, index: usize) -> i64 {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if index % MISSING_EVERY == MISSING_EVERY - 1 {
        return PRODUCTS + rng.random_range(1..=1_000);
    }
    let zipf = Zipf::new(PRODUCTS as f64, SKEW).expect("valid Zipf parameters");
    let rank = zipf.sample(&mut rng) as i64;
    // 7919 is coprime with PRODUCTS: a permutation of the ids.
    ((rank - 1) * 7_919) % PRODUCTS + 1
}

/// The product ids of a run's first `count` views.
pub fn views(seed: u64, count: usize) -> Vec<i64> {
    (0..count).map(|index| view_at(seed, index)).collect()
}

/// The best hit rate any cache can reach on `views`: every first view of a
/// product (and every view of a missing one) needs the database.
pub fn ideal_hit_rate(views: &[i64]) -> f64 {
    let mut seen = HashSet::new();
    let misses = views
        .iter()
        .filter(|id| !(1..=PRODUCTS).contains(*id) || seen.insert(**id))
        .count();
    1.0 - misses as f64 / views.len().max(1) as f64
}

/// Runs the views against the service `S`, watches them, audits both
/// stores, checks freshness, and returns the figures the verdict is made of
/// (also recorded on `ctx`).
pub async fn run_views<S: ProductPageApi>(ctx: &RunContext) -> Result<Figures> {
    let heap = heap_counter(ctx.info().id)?;
    let database = ctx.database(Some(&CATALOGUE)).await?;
    if !database.has_statement_stats() {
        return Err(HarnessError::Setup {
            scenario: ctx.info().id.to_owned(),
            detail: "this PostgreSQL server does not load pg_stat_statements, which the run needs to count the service's queries".to_owned(),
        });
    }
    let redis = ctx.redis().await?;
    let (db_pool, redis_pool) = (database.pool(POOL).await?, redis.pool(POOL).await?);
    database.reset_statement_stats().await?;
    let heap_start = heap.live_bytes();
    let service = Arc::new(S::new(db_pool.clone(), redis_pool, CONFIG));
    let done = Arc::new(AtomicUsize::new(0));
    let watch = Watch::start(ctx, &service, &done, &redis, heap);
    let seed = ctx.seed();
    let outcome = {
        let (service, done) = (Arc::clone(&service), Arc::clone(&done));
        ctx.drive("product page views", WORKLOAD, move |index| {
            let (service, done) = (Arc::clone(&service), Arc::clone(&done));
            async move {
                // Check the page here and keep only the answer: holding ten
                // thousand pages would swamp the heap figures.
                let id = view_at(seed, index);
                let right = service
                    .page(id)
                    .await
                    .map(|page| page == seeded_product(id).as_ref().map(render_page));
                done.fetch_add(1, Ordering::Relaxed);
                right
            }
        })
        .await
    };
    let watched = watch.stop().await;
    let views = tally(&outcome, seed);
    // The run's own records are not the service's memory.
    drop(outcome);
    let local_entries = service.local_entries().await;
    let heap_end = heap.live_bytes();
    let memory = watched.memory(heap_start, heap_end, local_entries, views.finished);
    let work = probes::database_work(&database).await?;
    let redis_audit = probes::audit_redis(&redis).await?;
    drop(service);
    let freshness = probes::check_freshness::<S>(ctx, &database).await?;
    db_pool.close().await;
    let figures = Figures {
        views,
        database: work,
        memory,
        redis: redis_audit,
        freshness,
    };
    probes::record(ctx, &figures, &watched);
    probes::record_plots(ctx, &figures, &watched);
    Ok(figures)
}

/// What happened to the views, as the clients saw them.
fn tally(outcome: &WorkloadOutcome<bool, ServiceError>, seed: u64) -> Views {
    let issued: Vec<i64> = views(seed, outcome.issued);
    let finished: Vec<i64> = outcome
        .records
        .iter()
        .map(|record| issued[record.index])
        .collect();
    let mut views = Views {
        planned: outcome.planned,
        finished: outcome.records.len(),
        unfinished: outcome.unfinished,
        distinct_products: finished
            .iter()
            .filter(|id| (1..=PRODUCTS).contains(*id))
            .collect::<HashSet<_>>()
            .len(),
        ideal_hit_rate: ideal_hit_rate(&finished),
        p99_ms: outcome.latencies().p99_ms().unwrap_or(0.0),
        ..Views::default()
    };
    for (record, id) in outcome.records.iter().zip(&finished) {
        match &record.result {
            Ok(true) => {}
            Ok(false) => {
                views.wrong_pages += 1;
                views.first_wrong.get_or_insert(*id);
            }
            Err(error) => {
                views.failed += 1;
                views.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_depend_on_the_seed_and_index_only() {
        assert_eq!(views(7, 500), views(7, 500));
        assert_ne!(views(7, 500), views(8, 500));
        // A live run's indexes go past the planned views and still give products.
        assert_eq!(view_at(7, 123_456), view_at(7, 123_456));
        let ids = views(7, 1_000);
        let missing = ids.iter().filter(|id| **id > PRODUCTS).count();
        assert_eq!(missing, 10);
        assert!(ids.iter().all(|id| *id >= 1 && *id <= PRODUCTS + 1_000));
    }

    #[test]
    fn the_ideal_hit_rate_misses_each_product_once_and_every_missing_one() {
        assert_eq!(ideal_hit_rate(&[]), 1.0);
        assert_eq!(ideal_hit_rate(&[1, 1, 1, 2]), 0.5);
        assert_eq!(ideal_hit_rate(&[PRODUCTS + 1, PRODUCTS + 1, 3, 3]), 0.25);
    }
}
