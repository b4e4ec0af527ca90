//! The storefront's best sellers: PostgreSQL behind a Redis cache.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use debuglab_harness::postgres::PgPool;

use crate::{
    query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
};

/// Claimed by the one caller that computes the report, in whichever replica.
const COMPUTING_KEY: &str = "report:best-sellers:computing";
/// How long a claim lasts if its holder dies before it lets go.
const CLAIM_FOR: Duration = Duration::from_secs(5);
/// How often a caller waiting for someone else's computation looks again.
const LOOK_EVERY: Duration = Duration::from_millis(5);

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
        // One caller computes the report: SET NX succeeds for exactly one, in
        // any replica. The others wait for its answer.
        loop {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(COMPUTING_KEY)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(CLAIM_FOR.as_millis() as u64)
                .query_async(&mut *cache)
                .await?;
            // Look again: the report may have come since the last look.
            if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
                if claimed.is_some() {
                    let _: i64 = cache.del(COMPUTING_KEY).await?;
                }
                return Ok(serde_json::from_str(&cached)?);
            }
            if claimed.is_some() {
                break;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
        let report = query_best_sellers(&self.db).await;
        if let Ok(report) = &report {
            let ttl_ms = self.config.ttl.as_millis() as u64;
            let () = cache
                .pset_ex(REPORT_KEY, serde_json::to_string(report)?, ttl_ms)
                .await?;
        }
        // Let go whatever happened, or the others wait for the claim to expire.
        let _: i64 = cache.del(COMPUTING_KEY).await?;
        Ok(report?)
    }
}
