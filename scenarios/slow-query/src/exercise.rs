//! The order history endpoint, as it shipped.

use debuglab_harness::postgres::{Migration, PgPool};

use crate::Order;

/// Schema changes this version of the service ships, after the base schema
/// in `migrations/`.
pub const MIGRATIONS: &[Migration] = &[];

/// The ten most recent orders of `user_id`, newest first.
pub async fn recent_orders(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
    sqlx::query_as("SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10")
        .bind(user_id)
        .fetch_all(pool)
        .await
}
