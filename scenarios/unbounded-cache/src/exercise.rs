//! The product page service: PostgreSQL behind two caches.

use std::collections::HashMap;
use std::sync::Mutex;

use deadpool_redis::redis::AsyncCommands;
use debuglab_harness::postgres::PgPool;

use crate::{render_page, CacheConfig, Product, ProductPageApi, ServiceError};

/// Renders product pages, caching them in the process and in Redis.
pub struct ProductPages {
    db: PgPool,
    redis: deadpool_redis::Pool,
    /// Pages rendered by this process, by product id.
    local: Mutex<HashMap<i64, String>>,
}

impl ProductPageApi for ProductPages {
    fn new(db: PgPool, redis: deadpool_redis::Pool, _config: CacheConfig) -> ProductPages {
        ProductPages {
            db,
            redis,
            local: Mutex::new(HashMap::new()),
        }
    }

    async fn page(&self, product_id: i64) -> Result<Option<String>, ServiceError> {
        if let Some(page) = self.local.lock().unwrap().get(&product_id) {
            return Ok(Some(page.clone()));
        }
        let key = format!("page:{product_id}");
        let mut redis = self.redis.get().await?;
        if let Some(page) = redis.get::<_, Option<String>>(&key).await? {
            self.local.lock().unwrap().insert(product_id, page.clone());
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
        self.local.lock().unwrap().insert(product_id, page.clone());
        Ok(Some(page))
    }

    async fn local_entries(&self) -> u64 {
        self.local.lock().unwrap().len() as u64
    }
}
