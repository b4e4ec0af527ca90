//! What a replica does when a post is liked: count the like, and credit the
//! post's author with a tip.

use deadpool_redis::redis::AsyncCommands;

use crate::{Replica, ReplicaError};

/// Counts one like of `post_id` in Redis (`likes:<post_id>`).
pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
    let mut cache = replica.cache.get().await?;
    let key = format!("likes:{post_id}");
    let likes: Option<i64> = cache.get(&key).await?;
    replica.notifications.notify_author(post_id).await;
    let () = cache.set(&key, likes.unwrap_or(0) + 1).await?;
    Ok(())
}

/// Credits a tip of `amount_cents` to wallet `wallet_id` in PostgreSQL:
/// adds it to the balance and counts it.
pub async fn credit_wallet(
    replica: &Replica,
    wallet_id: i64,
    amount_cents: i64,
) -> Result<(), ReplicaError> {
    let (balance, tips): (i64, i64) =
        sqlx::query_as("SELECT balance_cents, tips_received FROM wallets WHERE id = $1")
            .bind(wallet_id)
            .fetch_one(&replica.db)
            .await?;
    replica.fraud_check.approve(wallet_id, amount_cents).await;
    sqlx::query("UPDATE wallets SET balance_cents = $2, tips_received = $3 WHERE id = $1")
        .bind(wallet_id)
        .bind(balance + amount_cents)
        .bind(tips + 1)
        .execute(&replica.db)
        .await?;
    Ok(())
}
