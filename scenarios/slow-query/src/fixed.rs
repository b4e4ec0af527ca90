//! The order history endpoint, as it shipped.

use debuglab_harness::postgres::{Migration, PgPool};

use crate::Order;

/// Schema changes this version of the service ships, after the base schema
/// in `migrations/`.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 2,
    description: "index orders by user and time",
    // Matches the query exactly: equality on user_id, then created_at in the
    // order the query wants, so PostgreSQL reads ten index entries and stops.
    sql: "CREATE INDEX idx_orders_user_id_created_at ON orders (user_id, created_at DESC)",
}];

/// The ten most recent orders of `user_id`, newest first.
pub async fn recent_orders(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
    sqlx::query_as("SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10")
        .bind(user_id)
        .fetch_all(pool)
        .await
}
