//! Other ways to write the storefront, for the tests: wrong fixes — the
//! ways people really get this bug wrong — and other correct fixes. Not
//! learner material, and never in the library: the tests include this file,
//! and so does the replica program they start (`src/bin/replica.rs`), which
//! runs one of them by name (`--code process_lock`).
//!
//! Each module has a `Storefront`; [`ALL`] lists them.

use cache_stampede::{storefront_of, Code};

/// Every candidate, under its module's name.
pub static ALL: &[Code] = &[
    storefront_of!(never_expires),
    storefront_of!(jittered_ttl),
    storefront_of!(process_lock),
    storefront_of!(busy_callers_fail),
    storefront_of!(takes_turns),
    storefront_of!(blocks_its_thread),
    storefront_of!(early_refresh),
    storefront_of!(advisory_lock),
];

/// Wrong: "if it never expires, it never stampedes" — the report cached
/// with no TTL at all.
pub mod never_expires {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    pub struct Storefront {
        db: PgPool,
        cache: deadpool_redis::Pool,
    }

    impl StorefrontApi for Storefront {
        fn new(db: PgPool, cache: deadpool_redis::Pool, _config: CacheConfig) -> Storefront {
            Storefront { db, cache }
        }

        async fn best_sellers(&self) -> Result<BestSellers, ServiceError> {
            let mut cache = self.cache.get().await?;
            if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
                return Ok(serde_json::from_str(&cached)?);
            }
            let report = query_best_sellers(&self.db).await?;
            let () = cache
                .set(REPORT_KEY, serde_json::to_string(&report)?)
                .await?;
            Ok(report)
        }
    }
}

/// Wrong: "spread the expiries out" — a TTL of 80% to 120% of the
/// configured one, drawn at each write. Jitter spreads many keys' expiries;
/// one hot key still expires for everyone at once.
pub mod jittered_ttl {
    use std::time::{SystemTime, UNIX_EPOCH};

    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

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
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let ttl_ms = self.config.ttl.as_millis() as u64 * (80 + u64::from(nanos % 41)) / 100;
            let () = cache
                .pset_ex(REPORT_KEY, serde_json::to_string(&report)?, ttl_ms)
                .await?;
            Ok(report)
        }
    }
}

/// Wrong: "one computation at a time" — a lock inside the process, with the
/// cache looked at again once it is held. It makes one replica's callers
/// wait for each other, not the other replicas'.
pub mod process_lock {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;
    use tokio::sync::Mutex;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    pub struct Storefront {
        db: PgPool,
        cache: deadpool_redis::Pool,
        config: CacheConfig,
        computing: Mutex<()>,
    }

    impl StorefrontApi for Storefront {
        fn new(db: PgPool, cache: deadpool_redis::Pool, config: CacheConfig) -> Storefront {
            let computing = Mutex::new(());
            Storefront {
                db,
                cache,
                config,
                computing,
            }
        }

        async fn best_sellers(&self) -> Result<BestSellers, ServiceError> {
            let mut cache = self.cache.get().await?;
            if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
                return Ok(serde_json::from_str(&cached)?);
            }
            let _turn = self.computing.lock().await;
            // Whoever held the lock before may have stored the report.
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
}

/// Wrong: "whoever cannot compute it gets an error" — one caller claims the
/// computation (SET NX), the others are told to come back later.
pub mod busy_callers_fail {
    use deadpool_redis::redis::{self, AsyncCommands};
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

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
            let ttl_ms = self.config.ttl.as_millis() as u64;
            let claimed: Option<String> = redis::cmd("SET")
                .arg("report:best-sellers:computing")
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut *cache)
                .await?;
            if claimed.is_none() {
                return Err(ServiceError::Unavailable(
                    "busy: the report is being computed, try again shortly".to_owned(),
                ));
            }
            let report = query_best_sellers(&self.db).await?;
            let () = cache
                .pset_ex(REPORT_KEY, serde_json::to_string(&report)?, ttl_ms)
                .await?;
            Ok(report)
        }
    }
}

/// Wrong: "a lock in Redis around the computation" — taken with SET NX,
/// released with DEL, but a caller that waited for it computes the report
/// anyway: the callers take turns instead of sharing one computation.
pub mod takes_turns {
    use std::time::Duration;

    use deadpool_redis::redis::{self, AsyncCommands};
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    const LOCK_KEY: &str = "lock:report:best-sellers";

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
            loop {
                let locked: Option<String> = redis::cmd("SET")
                    .arg(LOCK_KEY)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(5_000)
                    .query_async(&mut *cache)
                    .await?;
                if locked.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let report = query_best_sellers(&self.db).await;
            if let Ok(report) = &report {
                let ttl_ms = self.config.ttl.as_millis() as u64;
                let () = cache
                    .pset_ex(REPORT_KEY, serde_json::to_string(report)?, ttl_ms)
                    .await?;
            }
            let _: i64 = cache.del(LOCK_KEY).await?;
            Ok(report?)
        }
    }
}

/// Wrong: the fixed code, but a caller waits for someone else's computation
/// with a blocking sleep (`std::thread::sleep`, 200 ms between looks), as a
/// synchronous client's retry loop does: its worker thread can do nothing
/// else meanwhile.
pub mod blocks_its_thread {
    use std::time::Duration;

    use deadpool_redis::redis::{self, AsyncCommands};
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    const COMPUTING_KEY: &str = "report:best-sellers:computing";

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
            loop {
                let claimed: Option<String> = redis::cmd("SET")
                    .arg(COMPUTING_KEY)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(5_000)
                    .query_async(&mut *cache)
                    .await?;
                if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
                    if claimed.is_some() {
                        let _: i64 = cache.del(COMPUTING_KEY).await?;
                    }
                    return Ok(serde_json::from_str(&cached)?);
                }
                if claimed.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let report = query_best_sellers(&self.db).await;
            if let Ok(report) = &report {
                let ttl_ms = self.config.ttl.as_millis() as u64;
                let () = cache
                    .pset_ex(REPORT_KEY, serde_json::to_string(report)?, ttl_ms)
                    .await?;
            }
            let _: i64 = cache.del(COMPUTING_KEY).await?;
            Ok(report?)
        }
    }
}

/// Correct: refresh early, serve the old report meanwhile. The report is
/// stored with the time it goes stale, under a key that lives two TTLs; the
/// first caller to find it stale claims the refresh (SET NX), looks again
/// and computes if it is still stale; the others keep serving the stale
/// report for the moment it takes. Only a missing report (the very first)
/// makes callers wait.
pub mod early_refresh {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use deadpool_redis::redis::{self, AsyncCommands};
    use debuglab_harness::postgres::PgPool;
    use serde::{Deserialize, Serialize};

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    #[derive(Serialize, Deserialize)]
    struct Stored {
        report: BestSellers,
        stale_at_ms: u64,
    }

    pub struct Storefront {
        db: PgPool,
        cache: deadpool_redis::Pool,
        config: CacheConfig,
    }

    const REFRESHING_KEY: &str = "report:best-sellers:refreshing";

    impl Storefront {
        async fn refresh(
            &self,
            cache: &mut deadpool_redis::Connection,
            ttl_ms: u64,
        ) -> Result<BestSellers, ServiceError> {
            let report = query_best_sellers(&self.db).await?;
            let fresh = Stored {
                report,
                stale_at_ms: now_ms() + ttl_ms,
            };
            let () = cache
                .pset_ex(REPORT_KEY, serde_json::to_string(&fresh)?, 2 * ttl_ms)
                .await?;
            Ok(fresh.report)
        }
    }

    async fn read_stored(
        cache: &mut deadpool_redis::Connection,
    ) -> Result<Option<Stored>, ServiceError> {
        let stored: Option<String> = cache.get(REPORT_KEY).await?;
        Ok(stored.map(|text| serde_json::from_str(&text)).transpose()?)
    }

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
    }

    impl StorefrontApi for Storefront {
        fn new(db: PgPool, cache: deadpool_redis::Pool, config: CacheConfig) -> Storefront {
            Storefront { db, cache, config }
        }

        async fn best_sellers(&self) -> Result<BestSellers, ServiceError> {
            let mut cache = self.cache.get().await?;
            let ttl_ms = self.config.ttl.as_millis() as u64;
            loop {
                let stored = read_stored(&mut cache).await?;
                if let Some(stored) = &stored {
                    if now_ms() < stored.stale_at_ms {
                        return Ok(stored.report.clone());
                    }
                }
                let claimed: Option<String> = redis::cmd("SET")
                    .arg(REFRESHING_KEY)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(5_000)
                    .query_async(&mut *cache)
                    .await?;
                if claimed.is_some() {
                    // Look again: whoever held the claim before may just have
                    // refreshed it.
                    let refreshed = match read_stored(&mut cache).await? {
                        Some(now) if now_ms() < now.stale_at_ms => Ok(now.report),
                        _ => self.refresh(&mut cache, ttl_ms).await,
                    };
                    let _: i64 = cache.del(REFRESHING_KEY).await?;
                    return refreshed;
                }
                if let Some(stored) = stored {
                    return Ok(stored.report);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Correct: PostgreSQL's advisory lock as the one computation's ticket,
/// across every replica: a caller that missed takes it (waiting in the
/// database for whoever holds it), looks at the cache again, and computes
/// only if the report is still missing.
pub mod advisory_lock {
    use deadpool_redis::redis::AsyncCommands;
    use debuglab_harness::postgres::PgPool;

    use crate::{
        query_best_sellers, BestSellers, CacheConfig, ServiceError, StorefrontApi, REPORT_KEY,
    };

    /// The advisory lock's number: any constant the app reserves for the report.
    const REPORT_LOCK: i64 = 4_242;

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
            let mut tx = self.db.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(REPORT_LOCK)
                .execute(&mut *tx)
                .await?;
            if let Some(cached) = cache.get::<_, Option<String>>(REPORT_KEY).await? {
                tx.commit().await?;
                return Ok(serde_json::from_str(&cached)?);
            }
            let report = query_best_sellers(&mut *tx).await?;
            let ttl_ms = self.config.ttl.as_millis() as u64;
            let () = cache
                .pset_ex(REPORT_KEY, serde_json::to_string(&report)?, ttl_ms)
                .await?;
            tx.commit().await?;
            Ok(report)
        }
    }
}
