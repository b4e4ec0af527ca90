//! The storefront's best sellers: PostgreSQL behind a Redis cache.

use deadpool_redis::redis::AsyncCommands;
use debuglab_harness::postgres::PgPool;

use crate::{
    query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
};

/// Serves the best-sellers report, cached in Redis for the configured TTL.
pub struct Storefront {
    db: PgPool,
    cache: deadpool_redis::Pool,
    config: CacheConfig,
}

impl StorefrontApi for Storefront {
    fn new(db: PgPool, cache: deadpool_redis::Pool, config: CacheConfig) -> Storefront {
        Storefront { db, cache, config }
    }

    async fn best_sellers(&self) -> Result<BestSellers, ServiceError> {
        let mut cache = self.cache.get().await?;
        if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
            return Ok(serde_json::from_str(&cached)?);
        }
        let report = query_best_sellers(&self.db).await?;
        let ttl_ms = self.config.ttl.as_millis() as u64;
        let () = cache
            .pset_ex(REPORT_KEY, serde_json::to_string(&report)?, ttl_ms)
            .await?;
        Ok(report)
    }
}
