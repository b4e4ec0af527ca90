//! What a replica does when a post is liked: count the like, and credit the
//! post's author with a tip.

use deadpool_redis::redis::AsyncCommands;

use crate::{Replica, ReplicaError};

/// Counts one like of `post_id` in Redis (`likes:<post_id>`).
pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
    let mut cache = replica.cache.get().await?;
    let key = format!("likes:{post_id}");
    replica.notifications.notify_author(post_id).await;
    // INCR reads and writes in one step on the server: no other client's
    // command can run in between, whichever replica sends it.
    let _likes: i64 = cache.incr(&key, 1).await?;
    Ok(())
}

/// Credits a tip of `amount_cents` to wallet `wallet_id` in PostgreSQL:
/// adds it to the balance and counts it.
pub async fn credit_wallet(
    replica: &Replica,
    wallet_id: i64,
    amount_cents: i64,
) -> Result<(), ReplicaError> {
    replica.fraud_check.approve(wallet_id, amount_cents).await;
    // The database adds to the values it has at that moment (the row is
    // locked for the statement), instead of writing back values read earlier.
    sqlx::query("UPDATE wallets SET balance_cents = balance_cents + $2, tips_received = tips_received + 1 WHERE id = $1")
        .bind(wallet_id)
        .bind(amount_cents)
        .execute(&replica.db)
        .await?;
    Ok(())
}
