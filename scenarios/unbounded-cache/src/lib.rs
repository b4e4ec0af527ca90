//! # Unbounded cache: a map that only ever grows
//!
//! A shop renders product pages from PostgreSQL and caches them twice: in a
//! map inside the process and in Redis. Traffic is skewed — a few products
//! get most views — but the catalogue is large and every day brings products
//! nobody looked at before. The map has no size limit and the Redis keys no
//! expiry, so both grow with every new product viewed, forever; and an
//! updated price is never seen again.
//!
//! A run sends 10,000 views drawn from a Zipf distribution over 100,000
//! products, samples the in-process entries, live heap bytes, Redis `DBSIZE`
//! and `used_memory`, counts the database queries with `pg_stat_statements`,
//! and checks every page against the catalogue. The fixed service must stay
//! within its configured bound *and* keep most of the hit rate: removing the
//! cache or never expiring it does not pass.

pub mod buggy;
pub mod exercise;
pub mod fixed;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use debuglab_harness::alloc::live_heap_bytes;
use debuglab_harness::postgres::{DatabaseTemplate, PgConnection, PgPool};
use debuglab_harness::report::format_number;
use debuglab_harness::sampler::sample_every;
use debuglab_harness::workload::{drive, Workload};
use debuglab_harness::{
    HarnessError, PoolSettings, Result, RunContext, Scenario, ScenarioInfo, Service, Variant,
    Verdict,
};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use sqlx::migrate::Migrator;
use sqlx::Executor;

/// A row of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Product {
    /// The product's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price in cents.
    pub price_cents: i64,
}

/// Bytes of a rendered page.
pub const PAGE_BYTES: usize = 2048;

/// Renders `product`'s page (what both caches hold).
pub fn render_page(product: &Product) -> String {
    let mut page = format!(
        "<html><h1>{}</h1><p class=price>{}.{:02}</p><p>",
        product.name,
        product.price_cents / 100,
        product.price_cents % 100
    );
    while page.len() < PAGE_BYTES - 16 {
        page.push_str("Lorem ipsum dolor sit amet. ");
    }
    page.truncate(PAGE_BYTES - 16);
    page.push_str("</p></html>");
    page
}

/// Products in the catalogue; ids run from 1 to `PRODUCTS`.
pub const PRODUCTS: i64 = 100_000;

/// The catalogue row of product `id`, as seeded.
pub fn seeded_product(id: i64) -> Option<Product> {
    (1..=PRODUCTS).contains(&id).then(|| Product {
        id,
        name: format!("product {id}"),
        price_cents: (id * 7_919) % 10_000 + 100,
    })
}

/// The catalogue, seeded once per process and copied for each run.
pub static CATALOGUE: DatabaseTemplate = DatabaseTemplate {
    name: "unbounded_cache_catalogue",
    description: "seeding 100,000 products",
    seed: seed_catalogue,
};

fn seed_catalogue(conn: &mut PgConnection) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        BASE_MIGRATIONS
            .run_direct(&mut *conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: INFO.id.to_owned(),
                detail: format!("base migration failed: {error}"),
            })?;
        conn.execute(
            format!(
                "INSERT INTO products (id, name, price_cents)
                 SELECT g, 'product ' || g, (g * 7919) % 10000 + 100 FROM generate_series(1::bigint, {PRODUCTS}::bigint) AS g"
            )
            .as_str(),
        )
        .await
        .map_err(HarnessError::postgres("seeding products"))?;
        Ok(())
    })
}

/// The catalogue's schema (`migrations/`).
pub static BASE_MIGRATIONS: Migrator = sqlx::migrate!();

/// How big the caches may get and how long an entry may live: the app's
/// configuration, handed to the service like its pools.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// Most pages the in-process cache may hold.
    pub max_entries: u64,
    /// Longest an entry may be served from either cache.
    pub ttl: Duration,
}

/// The configuration a run uses.
pub const CONFIG: CacheConfig = CacheConfig {
    max_entries: 1_000,
    ttl: Duration::from_secs(60),
};

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No Redis connection could be had.
    #[error("cache pool: {0}")]
    CachePool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("cache: {0}")]
    Cache(#[from] deadpool_redis::redis::RedisError),
}

/// What every variant's `ProductPages` offers.
pub trait ProductPageApi: Send + Sync + Sized + 'static {
    /// The service, on the harness's pools and the app's cache configuration.
    fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> Self;
    /// The page of `product_id`, or `None` if there is no such product.
    fn page(
        &self,
        product_id: i64,
    ) -> impl Future<Output = std::result::Result<Option<String>, ServiceError>> + Send;
    /// Pages held by the in-process cache.
    fn local_entries(&self) -> impl Future<Output = u64> + Send;
}

/// Most heap growth per 1,000 views a bounded cache shows once it is full
/// (an unbounded one grows by a page for every new product: ~500 KB here).
pub const MAX_LATE_HEAP_BYTES_PER_1000: f64 = 100.0 * 1024.0;

/// The pools the service gets.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

/// Views in a run.
pub const REQUESTS: usize = 10_000;
/// One view in this many asks for a product that does not exist.
const MISSING_EVERY: usize = 100;
/// Zipf exponent: a few products get most views.
const SKEW: f64 = 1.1;

/// The product ids of a run's views: Zipf-ranked, spread over the catalogue,
/// with an occasional id that does not exist.
pub fn views(seed: u64, count: usize) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(PRODUCTS as f64, SKEW).expect("valid Zipf parameters");
    (0..count)
        .map(|index| {
            if index % MISSING_EVERY == MISSING_EVERY - 1 {
                PRODUCTS + rng.random_range(1..=1_000)
            } else {
                let rank = zipf.sample(&mut rng) as i64;
                // 7919 is coprime with PRODUCTS: a permutation of the ids.
                ((rank - 1) * 7_919) % PRODUCTS + 1
            }
        })
        .collect()
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

static INFO: ScenarioInfo = ScenarioInfo {
    id: "unbounded-cache",
    title: "Unbounded cache",
    summary: "A page cache with no size limit and no expiry, in the process and in Redis, grows with every new product viewed.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "cache_entries_end",
    key_metrics: &["cache_entries_end", "heap_growth_bytes", "late_heap_bytes_per_1000_views", "redis_keys_end", "redis_keys_without_expiry", "hit_rate", "ideal_hit_rate", "db_queries"],
    readme: include_str!("../README.md"),
};

/// The unbounded-cache scenario.
pub struct UnboundedCache;

/// The scenario, for the CLI's list.
pub static SCENARIO: UnboundedCache = UnboundedCache;

impl Scenario for UnboundedCache {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        match ctx.variant() {
            Variant::Buggy => Box::pin(run::<buggy::ProductPages>(ctx)),
            Variant::Fixed => Box::pin(run::<fixed::ProductPages>(ctx)),
            Variant::Exercise => Box::pin(run::<exercise::ProductPages>(ctx)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Snapshot {
    views_done: usize,
    entries: u64,
    heap_bytes: usize,
    redis_keys: i64,
}

async fn run<S: ProductPageApi>(ctx: &RunContext) -> Result<Verdict> {
    let database = ctx.database(Some(&CATALOGUE)).await?;
    let redis = ctx.redis().await?;
    let db_pool = database.pool(POOL).await?;
    let redis_pool = redis.pool(POOL).await?;
    database.reset_statement_stats().await?;
    let heap_start = live_heap_bytes();
    let service = Arc::new(S::new(db_pool.clone(), redis_pool, CONFIG));
    let done = Arc::new(AtomicUsize::new(0));

    let snapshot = {
        let (service, done, redis) = (Arc::clone(&service), Arc::clone(&done), redis.clone());
        move || {
            let (service, done, redis) = (Arc::clone(&service), Arc::clone(&done), redis.clone());
            async move {
                Snapshot {
                    views_done: done.load(Ordering::Relaxed),
                    entries: service.local_entries().await,
                    heap_bytes: live_heap_bytes(),
                    redis_keys: redis.dbsize().await.unwrap_or(0),
                }
            }
        }
    };
    let sampler = sample_every(Duration::from_millis(100), snapshot.clone());
    let views = Arc::new(views(ctx.seed(), REQUESTS));
    let workload = Workload {
        requests: REQUESTS,
        concurrency: 8,
        max_duration: Duration::from_secs(60),
        hard_limit: Duration::from_secs(90),
    };
    let outcome = {
        let (service, done, views) = (Arc::clone(&service), Arc::clone(&done), Arc::clone(&views));
        drive("product page views", workload, move |index| {
            let (service, done, views) =
                (Arc::clone(&service), Arc::clone(&done), Arc::clone(&views));
            async move {
                // Check the page here and keep only the answer: holding ten
                // thousand pages would swamp the heap figures.
                let id = views[index];
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
    let samples = sampler.stop().await;
    let end = snapshot().await;

    let mut wrong_pages = 0;
    let mut first_wrong = None;
    for record in &outcome.records {
        if let Ok(false) = record.result {
            wrong_pages += 1;
            first_wrong.get_or_insert(views[record.index]);
        }
    }
    let errors = outcome.errors() + outcome.unfinished;
    let first_error = outcome
        .records
        .iter()
        .find_map(|record| record.result.as_ref().err().map(ToString::to_string));
    let db_queries: i64 = database
        .statement_stats(10)
        .await?
        .iter()
        .filter(|stats| stats.query.contains("FROM products"))
        .map(|stats| stats.calls)
        .sum();
    let finished = outcome.records.len().max(1);
    let hit_rate = 1.0 - db_queries as f64 / finished as f64;
    let ideal = ideal_hit_rate(&views[..outcome.records.len()]);
    let distinct = views
        .iter()
        .filter(|id| (1..=PRODUCTS).contains(*id))
        .collect::<HashSet<_>>()
        .len();
    let heap_growth = end.heap_bytes as f64 - heap_start as f64;
    // Growth in the second half of the run, when a bounded cache is full and
    // only an unbounded one still grows with every new product.
    let late: Vec<(f64, f64)> = samples
        .iter()
        .map(|sample| sample.value)
        .chain(std::iter::once(end))
        .filter(|point| point.views_done >= REQUESTS / 2)
        .map(|point| (point.views_done as f64 / 1000.0, point.heap_bytes as f64))
        .collect();
    let late_heap_per_1000 = debuglab_harness::stats::slope(&late).unwrap_or(0.0);
    let ttls = redis.key_ttls("page:*", 200).await?;
    let keys_without_expiry = ttls.iter().filter(|(_, ttl)| *ttl < 0).count();
    let longest_ttl_ms = ttls.iter().map(|(_, ttl)| *ttl).max().unwrap_or(0);
    let memory = redis.info("memory").await.unwrap_or_default();
    let used_memory: f64 = memory
        .get("used_memory")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);

    ctx.metric("requests", outcome.records.len() as f64);
    ctx.metric("errors", errors as f64);
    ctx.metric("wrong_pages", wrong_pages as f64);
    ctx.metric("distinct_products", distinct as f64);
    ctx.metric("cache_entries_end", end.entries as f64);
    ctx.metric("heap_growth_bytes", heap_growth);
    ctx.metric("late_heap_bytes_per_1000_views", late_heap_per_1000.round());
    ctx.metric("redis_keys_end", end.redis_keys as f64);
    ctx.metric("redis_keys_without_expiry", keys_without_expiry as f64);
    ctx.metric("redis_used_memory_bytes", used_memory);
    ctx.metric("db_queries", db_queries as f64);
    ctx.metric("hit_rate", round3(hit_rate));
    ctx.metric("ideal_hit_rate", round3(ideal));
    ctx.metric("p99_ms", outcome.latencies().p99_ms().unwrap_or(0.0));

    ctx.evidence(format!(
        "{} views, 8 at a time, Zipf (s = {SKEW}) over {} products (seed {}): {distinct} distinct products; cache configured for {} entries, TTL {} s",
        outcome.records.len(),
        format_number(PRODUCTS as f64),
        ctx.seed(),
        CONFIG.max_entries,
        CONFIG.ttl.as_secs()
    ));
    ctx.evidence(format!(
        "in-process cache: {} entries at the end; live heap grew by {} bytes in all, {} bytes per 1,000 views in the second half",
        end.entries,
        format_number(heap_growth.round()),
        format_number(late_heap_per_1000.round())
    ));
    ctx.evidence(format!(
        "Redis: DBSIZE {}, INFO memory used_memory {} bytes; of {} page:* keys sampled, {keys_without_expiry} have no expiry (TTL -1), the longest TTL is {} ms",
        end.redis_keys,
        format_number(used_memory),
        ttls.len(),
        longest_ttl_ms
    ));
    ctx.evidence(format!(
        "database queries (pg_stat_statements calls): {db_queries} for {} views: hit rate {:.1}% (the best any cache can do here: {:.1}%)",
        outcome.records.len(),
        hit_rate * 100.0,
        ideal * 100.0
    ));
    ctx.evidence(format!(
        "samples (views: cache entries / heap MiB / Redis keys): {}",
        timeline(
            &samples
                .iter()
                .map(|sample| sample.value)
                .collect::<Vec<_>>()
        )
    ));
    if let Some(id) = first_wrong {
        ctx.evidence(format!(
            "{wrong_pages} pages differed from the catalogue; the first: product {id}"
        ));
    }
    if let Some(error) = &first_error {
        ctx.evidence(format!("{errors} views failed; the first: {error}"));
    }
    db_pool.close().await;

    let mut problems = Vec::new();
    if end.entries > CONFIG.max_entries {
        problems.push(format!(
            "the in-process cache holds {} entries, over its bound of {}",
            end.entries, CONFIG.max_entries
        ));
    }
    if late_heap_per_1000 > MAX_LATE_HEAP_BYTES_PER_1000 {
        problems.push(format!(
            "the heap still grows by {} bytes per 1,000 views in the second half of the run",
            format_number(late_heap_per_1000.round())
        ));
    }
    if keys_without_expiry > 0 {
        problems.push(format!(
            "{keys_without_expiry} sampled Redis keys never expire"
        ));
    }
    if longest_ttl_ms > CONFIG.ttl.as_millis() as i64 {
        problems.push(format!(
            "a Redis key lives {longest_ttl_ms} ms, longer than the {} s TTL",
            CONFIG.ttl.as_secs()
        ));
    }
    if hit_rate < 0.8 * ideal {
        problems.push(format!(
            "the hit rate {:.1}% is under 80% of the {:.1}% a cache can reach: {db_queries} database queries",
            hit_rate * 100.0,
            ideal * 100.0
        ));
    }
    if wrong_pages > 0 {
        problems.push(format!("{wrong_pages} pages were wrong"));
    }
    if errors > 0 {
        problems.push(format!("{errors} views failed or hung"));
    }
    Ok(Verdict::from_problems(&problems, || {
        format!(
            "Bounded: {} cache entries (limit {}), every Redis key expires, hit rate {:.1}% ({db_queries} database queries for {} views), every page right.",
            end.entries,
            CONFIG.max_entries,
            hit_rate * 100.0,
            outcome.records.len()
        )
    }))
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn timeline(points: &[Snapshot]) -> String {
    let step = (points.len() / 6).max(1);
    points
        .iter()
        .step_by(step)
        .map(|point| {
            format!(
                "{}: {} / {:.1} / {}",
                point.views_done,
                point.entries,
                point.heap_bytes as f64 / (1024.0 * 1024.0),
                point.redis_keys
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
