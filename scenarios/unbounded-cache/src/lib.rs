//! # Unbounded cache: product pages that eat memory and forget prices
//!
//! A shop renders product pages from PostgreSQL and caches them twice: inside
//! the process and in Redis. Pages got fast when the caching went in. Since
//! then the service's memory has grown every day, Redis' memory with it, and
//! a price changed last week still shows its old value on the page.
//!
//! A run sends 10,000 views, 8 at a time, drawn from a Zipf distribution over
//! 100,000 products: a few products get most views, and new ones keep
//! appearing.
//!
//! ## The contract
//!
//! Whatever the code looks like, the page service must still (checked in
//! [`verdict`] from evidence the variant cannot forge):
//!
//! - serve every page as the catalogue has it — the right name and price for
//!   every product, nothing for an id that does not exist — without failing
//!   or hanging;
//! - show a changed price once the configured TTL has passed, both from an
//!   instance that viewed the product before and from a new instance that
//!   shares the same Redis: a second configuration with a 250 ms TTL views a
//!   product, the price is changed in PostgreSQL, and the product is viewed
//!   again after the TTL;
//! - keep the in-process cache within `max_entries`: the live heap (the
//!   harness's counting allocator) may grow by at most twice `max_entries`
//!   pages over the run, and no more than a little in its second half; the
//!   count the service reports itself (`local_entries`) is evidence, never
//!   proof;
//! - let every key it writes to Redis expire, within the configured TTL
//!   (`PTTL` of every key; a key gone meanwhile is fine);
//! - keep caching: PostgreSQL's own count of the statements it ran
//!   (`pg_stat_statements`, whatever SQL the variant wrote) gives a hit rate
//!   of at least 80% of the best any cache reaches on the same views, and
//!   the database returns at most one row per view.
//!
//! The run is laid out in [`workload`] (the views), [`probes`] (what is
//! watched and audited) and [`verdict`] (the judgement, a pure function).

pub mod buggy;
pub mod fixed;
pub mod probes;
pub mod verdict;
pub mod workload;

use std::future::Future;
use std::time::Duration;

use debuglab_harness::postgres::{DatabaseTemplate, PgConnection, PgPool};
use debuglab_harness::{
    HarnessError, Result, RunContext, Scenario, ScenarioInfo, Service, Sources, Variant, Verdict,
};
pub use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::Executor;

pub use verdict::Figures;
pub use workload::{
    ideal_hit_rate, view_at, views, CONFIG, FRESHNESS_CONFIG, POOL, REQUESTS, WORKLOAD,
};

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
        // The same prices as `seeded_product`, which the run checks pages against.
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

/// A variant's whole run — its `ProductPages` under the views, the audits
/// and the freshness check — as a plain function pointer.
pub type Candidate = for<'a> fn(&'a RunContext) -> BoxFuture<'a, Result<Figures>>;

/// The run of the service `S`; [`product_pages_of!`] turns it into a [`Candidate`].
pub fn candidate<S: ProductPageApi>(ctx: &RunContext) -> BoxFuture<'_, Result<Figures>> {
    Box::pin(workload::run_views::<S>(ctx))
}

/// The [`Candidate`] of a module that has a `ProductPages` implementing
/// [`ProductPageApi`]: `product_pages_of!(fixed)`. The exercise's binary and
/// the tests use it for code that is not in this library.
#[macro_export]
macro_rules! product_pages_of {
    ($code:ident) => {
        $crate::candidate::<$code::ProductPages> as $crate::Candidate
    };
}

static INFO: ScenarioInfo = ScenarioInfo {
    id: "unbounded-cache",
    title: "Unbounded cache",
    summary: "The product page service's memory grows every day, Redis' too, and a price changed last week still shows its old value.",
    services: &[Service::Postgres, Service::Redis],
    signal_metric: "heap_growth_bytes",
    key_metrics: &[
        "heap_growth_bytes",
        "late_heap_bytes_per_1000_views",
        "local_entries_end",
        "redis_keys_end",
        "redis_keys_never_expiring",
        "stale_views_after_ttl",
        "hit_rate",
        "ideal_hit_rate",
        "db_rows_per_view",
    ],
    live_gauges: &["heap_mib", "local_entries", "redis_keys"],
    hints: include_str!("../HINTS.md"),
    solution: include_str!("../SOLUTION.md"),
    sources: Sources {
        buggy: include_str!("buggy.rs"),
        fixed: include_str!("fixed.rs"),
    },
};

/// The unbounded-cache scenario, running its buggy and fixed code, or a
/// candidate's (the learner's exercise, a test's wrong fix) as the exercise.
pub struct UnboundedCache {
    candidate: Option<Candidate>,
}

/// The scenario, for the CLI's list.
pub static SCENARIO: UnboundedCache = UnboundedCache { candidate: None };

impl UnboundedCache {
    /// The scenario with `candidate` as what its exercise variant runs.
    pub const fn with_candidate(candidate: Candidate) -> UnboundedCache {
        UnboundedCache {
            candidate: Some(candidate),
        }
    }

    /// What a run of `variant` runs.
    pub fn candidate(&self, variant: Variant) -> Result<Candidate> {
        variant.pick(
            INFO.id,
            product_pages_of!(buggy),
            product_pages_of!(fixed),
            self.candidate,
        )
    }
}

impl Scenario for UnboundedCache {
    fn info(&self) -> &'static ScenarioInfo {
        &INFO
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>> {
        Box::pin(async move {
            let run = self.candidate(ctx.variant())?;
            let figures = run(ctx).await?;
            Ok(verdict::verdict(&figures))
        })
    }
}
