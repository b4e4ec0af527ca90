//! What the run watches while the views go on (live heap bytes, the entries
//! the service reports, Redis `DBSIZE`), what it audits afterwards
//! (`pg_stat_statements`, every Redis key's `PTTL`), the freshness check,
//! and the metrics and evidence it records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::alloc::HeapCounter;
use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::redis::{RunRedis, Ttl};
use debuglab_harness::report::grouped;
use debuglab_harness::sampler::{sample_every, Sample, Sampler};
use debuglab_harness::stats::slope;
use debuglab_harness::{HarnessError, Plot, PlotKind, PoolSettings, Result, RunContext};

use crate::verdict::{
    plural, DatabaseWork, Figures, Freshness, Memory, PageSeen, RedisAudit, HEAP_BOUND_BYTES,
};
use crate::workload::{CONFIG, FRESHNESS_CONFIG, WORKLOAD};
use crate::{render_page, seeded_product, Product, ProductPageApi, ServiceError, PRODUCTS};

/// Keys whose `PTTL` the audit reads at most (a live run may write many more).
const KEYS_AUDITED: usize = 50_000;

/// The product the freshness check changes the price of.
pub const FRESHNESS_PRODUCT: i64 = 42;

/// How long past the TTL the freshness check waits before it looks again:
/// the wait is what is tested, so it is generous.
const FRESHNESS_MARGIN: Duration = Duration::from_millis(250);

/// How long one view of the freshness check may take.
const FRESHNESS_VIEW_LIMIT: Duration = Duration::from_secs(10);

/// The freshness check's pools: it views one product at a time.
const FRESHNESS_POOL: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: Duration::from_secs(10),
};

/// The service and the stores at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    views_done: usize,
    local_entries: u64,
    heap_bytes: usize,
    redis_keys: i64,
}

/// The sampler that watches the views.
pub struct Watch {
    sampler: Sampler<Snapshot>,
}

/// What the sampler saw.
pub struct Watched {
    samples: Vec<Snapshot>,
}

impl Watch {
    /// Samples every 100 ms; the latest values are also the live run's gauges.
    pub fn start<S: ProductPageApi>(
        ctx: &RunContext,
        service: &Arc<S>,
        done: &Arc<AtomicUsize>,
        redis: &RunRedis,
        heap: HeapCounter,
    ) -> Watch {
        let (service, done, redis, progress) = (
            Arc::clone(service),
            Arc::clone(done),
            redis.clone(),
            Arc::clone(ctx.progress()),
        );
        let sampler = sample_every(Duration::from_millis(100), move || {
            let (service, done, redis, progress) = (
                Arc::clone(&service),
                Arc::clone(&done),
                redis.clone(),
                Arc::clone(&progress),
            );
            async move {
                let snapshot = Snapshot {
                    views_done: done.load(Ordering::Relaxed),
                    local_entries: service.local_entries().await,
                    heap_bytes: heap.live_bytes(),
                    redis_keys: redis.dbsize().await.unwrap_or(0),
                };
                progress.gauge(
                    "heap_mib",
                    (snapshot.heap_bytes as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
                );
                progress.gauge("local_entries", snapshot.local_entries as f64);
                progress.gauge("redis_keys", snapshot.redis_keys as f64);
                snapshot
            }
        });
        Watch { sampler }
    }

    /// Stops sampling.
    pub async fn stop(self) -> Watched {
        Watched {
            samples: self
                .sampler
                .stop()
                .await
                .into_iter()
                .map(|sample: Sample<Snapshot>| sample.value)
                .collect(),
        }
    }
}

impl Watched {
    /// The memory figures: growth from `heap_start` to `heap_end`, and the
    /// slope over the second half of `finished` views, when a bounded cache
    /// is full and only one that keeps every page still grows.
    pub fn memory(
        &self,
        heap_start: usize,
        heap_end: usize,
        local_entries: u64,
        finished: usize,
    ) -> Memory {
        let late: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|point| point.views_done >= finished / 2)
            .map(|point| (point.views_done as f64 / 1000.0, point.heap_bytes as f64))
            .collect();
        // Three points at least, spread over a few hundred views, or it is noise.
        let spread =
            late.last().map_or(0.0, |last| last.0) - late.first().map_or(0.0, |first| first.0);
        let late_slope = (late.len() >= 3 && spread >= 0.5)
            .then(|| slope(&late))
            .flatten();
        Memory {
            local_entries,
            heap_growth_bytes: heap_end as f64 - heap_start as f64,
            late_heap_bytes_per_1000: late_slope,
        }
    }

    /// A few points of the samples: `views: entries / heap MiB / Redis keys`.
    fn timeline(&self) -> String {
        let step = (self.samples.len() / 6).max(1);
        self.samples
            .iter()
            .step_by(step)
            .map(|point| {
                format!(
                    "{}: {} / {:.1} / {}",
                    point.views_done,
                    point.local_entries,
                    point.heap_bytes as f64 / (1024.0 * 1024.0),
                    point.redis_keys
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The work PostgreSQL did since the statistics were reset, whatever SQL the
/// service sent (the harness's probes left out).
pub async fn database_work(database: &RunDatabase) -> Result<DatabaseWork> {
    let totals = database.statement_totals().await?;
    Ok(DatabaseWork {
        statements: totals.calls,
        rows: totals.rows,
        shared_blocks: totals.shared_blocks,
    })
}

/// Every key in the run's Redis database (whatever the service named them),
/// with its `PTTL`; and `DBSIZE` and `used_memory`.
pub async fn audit_redis(redis: &RunRedis) -> Result<RedisAudit> {
    let ttls = redis.key_ttls("*", KEYS_AUDITED).await?;
    let memory = redis.info("memory").await.unwrap_or_default();
    let mut audit = RedisAudit {
        keys: redis.dbsize().await?,
        keys_checked: ttls.len(),
        used_memory_bytes: memory
            .get("used_memory")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0),
        ..RedisAudit::default()
    };
    for (_, ttl) in &ttls {
        match ttl {
            Ttl::Never => audit.never_expiring += 1,
            Ttl::Expires(left) => {
                let left = left.as_millis() as u64;
                audit.longest_ttl_ms = Some(
                    audit
                        .longest_ttl_ms
                        .map_or(left, |longest| longest.max(left)),
                );
            }
            // Expired between SCAN and PTTL: what a key should do.
            Ttl::Gone => {}
        }
    }
    Ok(audit)
}

/// The freshness check: an instance configured with a short TTL views a
/// product, the price changes in PostgreSQL, and once the TTL has passed
/// the same instance and a new one (the same Redis, its in-process cache
/// empty) view it again; both must show the new price.
pub async fn check_freshness<S: ProductPageApi>(
    ctx: &RunContext,
    database: &RunDatabase,
) -> Result<Freshness> {
    let redis = ctx.redis().await?;
    let (db, cache) = (
        database.pool(FRESHNESS_POOL).await?,
        redis.pool(FRESHNESS_POOL).await?,
    );
    let id = FRESHNESS_PRODUCT;
    let old = seeded_product(id).expect("the freshness check's product is in the catalogue");
    let new = Product {
        price_cents: old.price_cents + 1_000,
        ..old.clone()
    };
    let mut check = Freshness {
        product_id: id,
        ttl: FRESHNESS_CONFIG.ttl,
        waited: FRESHNESS_CONFIG.ttl + FRESHNESS_MARGIN,
        ..Freshness::default()
    };
    let first = S::new(db.clone(), cache.clone(), FRESHNESS_CONFIG);
    check.before_change = seen(view(ctx, &first, id).await, &old, &old);
    if check.before_change == PageSeen::Right {
        change_price(database, &new).await?;
        // The TTL passing is what is checked: this waits for it, it does not synchronise.
        tokio::time::sleep(check.waited).await;
        check.redis_keys_past_ttl = redis.dbsize().await?.max(0) as usize;
        let second = S::new(db.clone(), cache.clone(), FRESHNESS_CONFIG);
        check.new_instance = seen(view(ctx, &second, id).await, &new, &old);
        check.same_instance = seen(view(ctx, &first, id).await, &new, &old);
    }
    db.close().await;
    Ok(check)
}

async fn view<S: ProductPageApi>(
    ctx: &RunContext,
    service: &S,
    id: i64,
) -> std::result::Result<Option<String>, String> {
    ctx.within(
        "a view of the freshness check",
        FRESHNESS_VIEW_LIMIT,
        service.page(id),
    )
    .await
    .ok_or_else(|| format!("no answer within {} s", FRESHNESS_VIEW_LIMIT.as_secs()))?
    .map_err(|error: ServiceError| error.to_string())
}

/// What a view showed, against the catalogue's page now (`current`) and before the change (`previous`).
fn seen(
    answer: std::result::Result<Option<String>, String>,
    current: &Product,
    previous: &Product,
) -> PageSeen {
    match answer {
        Err(error) => PageSeen::Failed(error),
        Ok(Some(page)) if page == render_page(current) => PageSeen::Right,
        Ok(Some(page)) if page == render_page(previous) => PageSeen::Stale,
        Ok(_) => PageSeen::Wrong,
    }
}

async fn change_price(database: &RunDatabase, product: &Product) -> Result<()> {
    let mut conn = database.probe_connection().await?;
    sqlx::query("UPDATE products SET price_cents = $2 WHERE id = $1")
        .bind(product.id)
        .bind(product.price_cents)
        .execute(&mut conn)
        .await
        .map_err(HarnessError::postgres("changing a price"))?;
    Ok(())
}

/// Records the metrics and the evidence of a run.
pub fn record(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let (views, memory, redis, freshness) = (
        &figures.views,
        &figures.memory,
        &figures.redis,
        &figures.freshness,
    );
    let stale = [&freshness.new_instance, &freshness.same_instance]
        .iter()
        .filter(|seen| ***seen == PageSeen::Stale)
        .count();
    for (name, value) in [
        ("wrong_pages", views.wrong_pages as f64),
        ("distinct_products", views.distinct_products as f64),
        ("p99_ms", views.p99_ms),
        ("local_entries_end", memory.local_entries as f64),
        ("heap_growth_bytes", memory.heap_growth_bytes),
        ("heap_bound_bytes", HEAP_BOUND_BYTES),
        (
            "late_heap_bytes_per_1000_views",
            memory.late_heap_bytes_per_1000.unwrap_or(0.0).round(),
        ),
        ("redis_keys_end", redis.keys as f64),
        ("redis_keys_never_expiring", redis.never_expiring as f64),
        (
            "redis_longest_ttl_ms",
            redis.longest_ttl_ms.unwrap_or(0) as f64,
        ),
        ("redis_used_memory_bytes", redis.used_memory_bytes),
        ("db_statements", figures.database.statements as f64),
        ("db_rows", figures.database.rows as f64),
        ("db_rows_per_view", round3(figures.rows_per_view())),
        ("hit_rate", round3(figures.hit_rate())),
        ("ideal_hit_rate", round3(views.ideal_hit_rate)),
        ("stale_views_after_ttl", stale as f64),
        ("redis_keys_past_ttl", freshness.redis_keys_past_ttl as f64),
    ] {
        ctx.metric(name, value);
    }
    record_evidence(ctx, figures, watched);
}

/// The pictures of a run: entries, Redis keys and heap over the views, and
/// the hit rate against the best any cache reaches on these views.
pub fn record_plots(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let over_views = |pick: fn(&Snapshot) -> f64| -> Vec<[f64; 2]> {
        watched
            .samples
            .iter()
            .map(|s| [s.views_done as f64, pick(s)])
            .collect()
    };
    const MIB: f64 = 1024.0 * 1024.0;
    ctx.series("local_entries", over_views(|s| s.local_entries as f64));
    ctx.series("redis_keys", over_views(|s| s.redis_keys as f64));
    ctx.series("heap_mib", over_views(|s| s.heap_bytes as f64 / MIB));
    ctx.plot(
        Plot::new(
            "entries",
            PlotKind::Line,
            "What the caches hold as the views go on",
        )
        .x("product pages viewed", "")
        .y("entries", "")
        .line("local_entries", "entries in the service's cache")
        .line("redis_keys", "keys in Redis")
        .bound(
            CONFIG.max_entries as f64,
            "the cache's configured bound: 1,000 entries",
        ),
    );
    ctx.plot(
        Plot::new("heap", PlotKind::Line, "The service's live heap")
            .x("product pages viewed", "")
            .y("live heap", "MiB")
            .line("heap_mib", "live heap")
            .bound(HEAP_BOUND_BYTES / MIB, "bound: twice a full cache's pages"),
    );
    ctx.series("hit_rate_percent", [[0.0, figures.hit_rate() * 100.0]]);
    ctx.series(
        "ideal_hit_rate_percent",
        [[0.0, figures.views.ideal_hit_rate * 100.0]],
    );
    ctx.plot(
        Plot::new("hits", PlotKind::Bars, "Views answered from a cache")
            .x("", "")
            .y("hit rate", "%")
            .categories(["hit rate"])
            .line("hit_rate_percent", "measured (from pg_stat_statements)")
            .line(
                "ideal_hit_rate_percent",
                "the best any cache reaches on these views",
            ),
    );
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn record_evidence(ctx: &RunContext, figures: &Figures, watched: &Watched) {
    let (views, memory, redis) = (&figures.views, &figures.memory, &figures.redis);
    ctx.evidence(format!(
        "{} views, {} at a time, Zipf over {} products (seed {}): {} distinct products; the service is configured for {} entries and a {} s TTL",
        grouped(views.finished as f64), WORKLOAD.concurrency, grouped(PRODUCTS as f64), ctx.seed(),
        grouped(views.distinct_products as f64), grouped(CONFIG.max_entries as f64), CONFIG.ttl.as_secs()
    ));
    ctx.evidence(format!(
        "live heap (the harness's counting allocator): grew by {} bytes over the run, {} bytes per 1,000 views in its second half; the service counts {} pages in its in-process cache",
        grouped(memory.heap_growth_bytes),
        memory.late_heap_bytes_per_1000.map_or_else(|| "(too few samples)".to_owned(), grouped),
        grouped(memory.local_entries as f64)
    ));
    ctx.evidence(format!(
        "samples (views: in-process entries / heap MiB / Redis keys): {}",
        watched.timeline()
    ));
    ctx.evidence(format!(
        "Redis: DBSIZE {}, INFO memory used_memory {} bytes; PTTL of {}: {} never expire (-1), the longest time left {}",
        grouped(redis.keys as f64), grouped(redis.used_memory_bytes), plural(redis.keys_checked, "key"),
        grouped(redis.never_expiring as f64),
        redis.longest_ttl_ms.map_or_else(|| "n/a".to_owned(), |ms| format!("{} ms", grouped(ms as f64)))
    ));
    ctx.evidence(format!(
        "pg_stat_statements: {} statements returned {} rows and touched {} shared buffers for {} views: hit rate {:.1}% (the best any cache reaches on these views: {:.1}%)",
        grouped(figures.database.statements as f64), grouped(figures.database.rows as f64),
        grouped(figures.database.shared_blocks as f64), grouped(views.finished as f64),
        figures.hit_rate() * 100.0, views.ideal_hit_rate * 100.0
    ));
    record_freshness(ctx, &figures.freshness);
    if let Some(id) = views.first_wrong {
        ctx.evidence(format!(
            "{} pages differed from the catalogue; the first: product {id}",
            views.wrong_pages
        ));
    }
    if let Some(error) = &views.first_error {
        ctx.evidence(format!("{} views failed; the first: {error}", views.failed));
    }
}

fn record_freshness(ctx: &RunContext, check: &Freshness) {
    let describe = |seen: &PageSeen| match seen {
        PageSeen::Right => "the new price".to_owned(),
        PageSeen::Stale => "the old price".to_owned(),
        PageSeen::Wrong => "another page".to_owned(),
        PageSeen::Failed(error) => format!("an error ({error})"),
    };
    if check.before_change != PageSeen::Right {
        ctx.evidence(format!(
            "freshness check (TTL {} s): the first view of product {} showed {}; nothing more was checked",
            check.ttl.as_secs_f64(), check.product_id, describe(&check.before_change)
        ));
        return;
    }
    ctx.evidence(format!(
        "freshness check (TTL {} s): product {} viewed, its price changed in PostgreSQL, {:.1} s later Redis held {}; the same instance showed {}, a new instance (same Redis) {}",
        check.ttl.as_secs_f64(), check.product_id, check.waited.as_secs_f64(), plural(check.redis_keys_past_ttl, "key"),
        describe(&check.same_instance), describe(&check.new_instance)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(points: &[(usize, usize)]) -> Watched {
        Watched {
            samples: points
                .iter()
                .map(|&(views_done, heap_bytes)| Snapshot {
                    views_done,
                    local_entries: 0,
                    heap_bytes,
                    redis_keys: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_late_slope_is_taken_over_the_second_half() {
        // Steep growth early, flat once the cache is full.
        let memory = watched(&[
            (0, 0),
            (2_000, 4_000_000),
            (5_000, 5_000_000),
            (7_500, 5_000_000),
            (10_000, 5_000_000),
        ])
        .memory(1_000, 5_001_000, 1_000, 10_000);
        assert_eq!(memory.heap_growth_bytes, 5_000_000.0);
        assert_eq!(memory.late_heap_bytes_per_1000, Some(0.0));
        let memory =
            watched(&[(5_000, 0), (7_500, 1_250_000), (10_000, 2_500_000)]).memory(0, 0, 0, 10_000);
        assert_eq!(memory.late_heap_bytes_per_1000, Some(500_000.0));
    }

    #[test]
    fn too_few_late_samples_tell_nothing() {
        let two = watched(&[(5_000, 0), (10_000, 9_000_000)]).memory(0, 0, 0, 10_000);
        assert_eq!(two.late_heap_bytes_per_1000, None);
        let close = watched(&[(5_000, 0), (5_100, 1), (5_200, 2)]).memory(0, 0, 0, 10_000);
        assert_eq!(close.late_heap_bytes_per_1000, None);
    }

    #[test]
    fn views_are_seen_as_right_stale_wrong_or_failed() {
        let old = seeded_product(42).unwrap();
        let new = Product {
            price_cents: old.price_cents + 1_000,
            ..old.clone()
        };
        assert_eq!(
            seen(Ok(Some(render_page(&new))), &new, &old),
            PageSeen::Right
        );
        assert_eq!(
            seen(Ok(Some(render_page(&old))), &new, &old),
            PageSeen::Stale
        );
        assert_eq!(seen(Ok(None), &new, &old), PageSeen::Wrong);
        assert_eq!(
            seen(Err("boom".to_owned()), &new, &old),
            PageSeen::Failed("boom".to_owned())
        );
    }
}
