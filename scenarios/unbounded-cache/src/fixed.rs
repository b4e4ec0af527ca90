//! The product page service: PostgreSQL behind two caches.

use deadpool_redis::redis::AsyncCommands;
use debuglab_harness::postgres::PgPool;
use moka::future::Cache;

use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

/// Renders product pages, caching them in the process and in Redis.
pub struct ProductPages {
    db: PgPool,
    redis: deadpool_redis::Pool,
    /// Pages rendered by this process, by product id: at most
    /// `config.max_entries`, each for at most `config.ttl`.
    local: Cache<i64, String>,
    config: CacheConfig,
}

impl ProductPageApi for ProductPages {
    fn new(db: PgPool, redis: deadpool_redis::Pool, config: CacheConfig) -> ProductPages {
        ProductPages {
            db,
            redis,
            local: Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build(),
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
        // PX: the key expires after the TTL, so Redis forgets it too.
        let () = redis
            .pset_ex(&key, &page, self.config.ttl.as_millis() as u64)
            .await?;
        self.local.insert(product_id, page.clone()).await;
        Ok(Some(page))
    }

    async fn local_entries(&self) -> u64 {
        // moka applies evictions in batches; count what is really kept.
        self.local.run_pending_tasks().await;
        self.local.entry_count()
    }
}
