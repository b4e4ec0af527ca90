//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `candidate` as the exercise and returns its report.
async fn judge(candidate: Candidate) -> Report {
    judge_candidate(UnboundedCache::with_candidate(candidate)).await
}

/// "The memory problem is the map": a bounded, expiring in-process cache,
/// with Redis still written by a plain `SET`.
mod bounds_only_the_process {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;
    use moka::future::Cache;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    pub struct ProductPages {
        db: PgPool,
        redis: deadpool_redis::Pool,
        local: Cache<i64, String>,
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            let local = Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build();
            ProductPages { db, redis, local }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            if let Some(page) = self.local.get(&product_id).await {
                return Ok(Some(page));
            }
            let key = format!("page:{product_id}");
            let mut redis = self.redis.get().await?;
            if let Some(page) = redis.get::<_, Option<String>>(&key).await? {
                self.local.insert(product_id, page.clone()).await;
                return Ok(Some(page));
            }
            let product: Option<Product> =
                sqlx::query_as("SELECT id, name, price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            let Some(product) = product else {
                return Ok(None);
            };
            let page = render_page(&product);
            let () = redis.set(&key, &page).await?;
            self.local.insert(product_id, page.clone()).await;
            Ok(Some(page))
        }

        async fn local_entries(&self) -> u64 {
            self.local.run_pending_tasks().await;
            self.local.entry_count()
        }
    }
}

#[tokio::test]
async fn bounding_only_the_process_is_not_a_fix() {
    let report = judge(product_pages_of!(bounds_only_the_process)).await;
    assert_unhealthy_because(
        &report,
        "keys in Redis never expire (PTTL -1) — Redis is a cache too",
    );
    assert_unhealthy_because(&report, "bounding the in-process cache alone is not a fix");
    assert_unhealthy_because(
        &report,
        "a new instance (its in-process cache empty, the same Redis) still showed the old price",
    );
}

/// "Redis keys need an expiry": the reference fix, with the TTL's
/// milliseconds handed to a command that counts seconds.
mod expiry_in_the_wrong_unit {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;
    use moka::future::Cache;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    pub struct ProductPages {
        db: PgPool,
        redis: deadpool_redis::Pool,
        local: Cache<i64, String>,
        config: CacheConfig,
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            let local = Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build();
            ProductPages {
                db,
                redis,
                local,
                config,
            }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            if let Some(page) = self.local.get(&product_id).await {
                return Ok(Some(page));
            }
            let key = format!("page:{product_id}");
            let mut redis = self.redis.get().await?;
            if let Some(page) = redis.get::<_, Option<String>>(&key).await? {
                self.local.insert(product_id, page.clone()).await;
                return Ok(Some(page));
            }
            let product: Option<Product> =
                sqlx::query_as("SELECT id, name, price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            let Some(product) = product else {
                return Ok(None);
            };
            let page = render_page(&product);
            let () = redis
                .set_ex(&key, &page, self.config.ttl.as_millis() as u64)
                .await?;
            self.local.insert(product_id, page.clone()).await;
            Ok(Some(page))
        }

        async fn local_entries(&self) -> u64 {
            self.local.run_pending_tasks().await;
            self.local.entry_count()
        }
    }
}

#[tokio::test]
async fn an_expiry_in_the_wrong_unit_is_not_a_fix() {
    let report = judge(product_pages_of!(expiry_in_the_wrong_unit)).await;
    assert_unhealthy_because(
        &report,
        "longer than the configured TTL of 60 s — about 1,000 times too long",
    );
    assert_unhealthy_because(
        &report,
        "a new instance (its in-process cache empty, the same Redis) still showed the old price",
    );
}

/// "No cache, no leak": every view goes to the database.
mod no_cache {
    use debuglab_harness::postgres::PgPool;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    pub struct ProductPages {
        db: PgPool,
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, _redis: deadpool_redis::Pool, _config: CacheConfig) -> ProductPages {
            ProductPages { db }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            let product: Option<Product> =
                sqlx::query_as("select id, name, price_cents from products where id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            Ok(product.as_ref().map(render_page))
        }

        async fn local_entries(&self) -> u64 {
            0
        }
    }
}

#[tokio::test]
async fn removing_the_caches_is_not_a_fix() {
    let report = judge(product_pages_of!(no_cache)).await;
    assert_unhealthy_because(&report, "statements for 10,000 views: a hit rate of 0.0%");
    assert_unhealthy_because(&report, "a fix must keep the hits");
}

/// "A size limit is a bound": an in-process cache with a maximum size and
/// no time to live, in front of an expiring Redis.
mod lru_without_ttl {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;
    use moka::future::Cache;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    pub struct ProductPages {
        db: PgPool,
        redis: deadpool_redis::Pool,
        local: Cache<i64, String>,
        config: CacheConfig,
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            let local = Cache::new(config.max_entries);
            ProductPages {
                db,
                redis,
                local,
                config,
            }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            if let Some(page) = self.local.get(&product_id).await {
                return Ok(Some(page));
            }
            let key = format!("page:{product_id}");
            let mut redis = self.redis.get().await?;
            if let Some(page) = redis.get::<_, Option<String>>(&key).await? {
                self.local.insert(product_id, page.clone()).await;
                return Ok(Some(page));
            }
            let product: Option<Product> =
                sqlx::query_as("SELECT id, name, price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            let Some(product) = product else {
                return Ok(None);
            };
            let page = render_page(&product);
            let () = redis
                .pset_ex(&key, &page, self.config.ttl.as_millis() as u64)
                .await?;
            self.local.insert(product_id, page.clone()).await;
            Ok(Some(page))
        }

        async fn local_entries(&self) -> u64 {
            self.local.run_pending_tasks().await;
            self.local.entry_count()
        }
    }
}

#[tokio::test]
async fn a_size_bound_without_a_ttl_keeps_old_prices() {
    let report = judge(product_pages_of!(lru_without_ttl)).await;
    assert_unhealthy_because(
        &report,
        "the instance that had viewed it still showed the old price while a new instance showed the new one",
    );
    assert_unhealthy_because(
        &report,
        "a size bound alone keeps a popular product's old price for ever",
    );
}

/// "The catalogue fits in memory": every product loaded on the first view,
/// a page of rows at a time, and pages rendered from memory.
mod whole_catalogue {
    use debuglab_harness::postgres::PgPool;
    use tokio::sync::OnceCell;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    const BATCH: i64 = 1_000;

    pub struct ProductPages {
        db: PgPool,
        /// Every product, by id.
        catalogue: OnceCell<Vec<Product>>,
    }

    impl ProductPages {
        async fn load(&self) -> Result<Vec<Product>, ServiceError> {
            let mut catalogue: Vec<Product> = Vec::new();
            loop {
                let after = catalogue.last().map_or(0, |product| product.id);
                let batch: Vec<Product> = sqlx::query_as(
                    "SELECT id, name, price_cents FROM products WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(BATCH)
                .fetch_all(&self.db)
                .await?;
                if batch.is_empty() {
                    return Ok(catalogue);
                }
                catalogue.extend(batch);
            }
        }
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, _redis: deadpool_redis::Pool, _config: CacheConfig) -> ProductPages {
            ProductPages {
                db,
                catalogue: OnceCell::new(),
            }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            let catalogue = self.catalogue.get_or_try_init(|| self.load()).await?;
            let found = catalogue.binary_search_by_key(&product_id, |product| product.id);
            Ok(found.ok().map(|index| render_page(&catalogue[index])))
        }

        async fn local_entries(&self) -> u64 {
            self.catalogue
                .get()
                .map_or(0, |catalogue| catalogue.len() as u64)
        }
    }
}

#[tokio::test]
async fn loading_the_whole_catalogue_is_not_a_fix() {
    let report = judge(product_pages_of!(whole_catalogue)).await;
    assert_unhealthy_because(&report, "he database returned 100,000 rows");
    assert_unhealthy_because(
        &report,
        "loading the whole catalogue reads what nobody views",
    );
    assert_unhealthy_because(
        &report,
        "the instance that had viewed it still showed the old price",
    );
}

/// "A synchronous client is simpler": a blocking call before every view.
mod blocks_its_thread {
    use std::time::Duration;

    use debuglab_harness::postgres::PgPool;

    use crate::{fixed, CacheConfig, ProductPageApi, ServiceError};

    pub struct ProductPages(fixed::ProductPages);

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            ProductPages(fixed::ProductPages::new(db, redis, config))
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            // Stands for a blocking HTTP client call in async code.
            std::thread::sleep(Duration::from_millis(150));
            self.0.page(product_id).await
        }

        async fn local_entries(&self) -> u64 {
            self.0.local_entries().await
        }
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(product_pages_of!(blocks_its_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: no in-process cache at all, Redis written with `SET … PX`.
mod redis_only {
    use deadpool_redis::redis::{self, AsyncCommands};
    use debuglab_harness::postgres::PgPool;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    pub struct ProductPages {
        db: PgPool,
        redis: deadpool_redis::Pool,
        config: CacheConfig,
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            ProductPages { db, redis, config }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            let key = format!("product-page/{product_id}");
            let mut conn = self.redis.get().await?;
            if let Some(page) = conn.get::<_, Option<String>>(&key).await? {
                return Ok(Some(page));
            }
            let product: Option<Product> =
                sqlx::query_as("SELECT id, name, price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            let Some(product) = product else {
                return Ok(None);
            };
            let page = render_page(&product);
            redis::cmd("SET")
                .arg(&key)
                .arg(&page)
                .arg("PX")
                .arg(self.config.ttl.as_millis() as u64)
                .query_async::<()>(&mut *conn)
                .await?;
            Ok(Some(page))
        }

        async fn local_entries(&self) -> u64 {
            0
        }
    }
}

#[tokio::test]
async fn a_redis_only_cache_is_another_correct_fix() {
    let report = judge(product_pages_of!(redis_only)).await;
    assert_fix_verified(&report);
}

/// Another correct fix: a hand-built in-process cache — first in, first out
/// at `max_entries`, each entry stamped and ignored after the TTL — in front
/// of Redis keys that expire.
mod hand_built_cache {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;
    use std::time::Instant;

    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;

    use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

    #[derive(Default)]
    struct Local {
        pages: HashMap<i64, (Instant, String)>,
        order: VecDeque<i64>,
    }

    pub struct ProductPages {
        db: PgPool,
        redis: deadpool_redis::Pool,
        config: CacheConfig,
        local: Mutex<Local>,
    }

    impl ProductPages {
        fn cached(&self, product_id: i64) -> Option<String> {
            let local = self.local.lock().unwrap();
            let (stored, page) = local.pages.get(&product_id)?;
            (stored.elapsed() < self.config.ttl).then(|| page.clone())
        }

        fn keep(&self, product_id: i64, page: &str) {
            let mut local = self.local.lock().unwrap();
            let entry = (Instant::now(), page.to_owned());
            if local.pages.insert(product_id, entry).is_none() {
                local.order.push_back(product_id);
                while local.order.len() as u64 > self.config.max_entries {
                    let oldest = local.order.pop_front().expect("not empty");
                    local.pages.remove(&oldest);
                }
            }
        }
    }

    impl ProductPageApi for ProductPages {
        fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
            ProductPages {
                db,
                redis,
                config,
                local: Mutex::default(),
            }
        }

        async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
            if let Some(page) = self.cached(product_id) {
                return Ok(Some(page));
            }
            let key = format!("page:{product_id}");
            let mut redis = self.redis.get().await?;
            if let Some(page) = redis.get::<_, Option<String>>(&key).await? {
                self.keep(product_id, &page);
                return Ok(Some(page));
            }
            let product: Option<Product> =
                sqlx::query_as("SELECT id, name, price_cents FROM products WHERE id = $1")
                    .bind(product_id)
                    .fetch_optional(&self.db)
                    .await?;
            let Some(product) = product else {
                return Ok(None);
            };
            let page = render_page(&product);
            let () = redis
                .pset_ex(&key, &page, self.config.ttl.as_millis() as u64)
                .await?;
            self.keep(product_id, &page);
            Ok(Some(page))
        }

        async fn local_entries(&self) -> u64 {
            self.local.lock().unwrap().pages.len() as u64
        }
    }
}

#[tokio::test]
async fn a_hand_built_bounded_cache_is_another_correct_fix() {
    let report = judge(product_pages_of!(hand_built_cache)).await;
    assert_fix_verified(&report);
}
