//! Other ways to write the two operations, for the tests that check the
//! verdict is about correctness and not about one particular fix:
//!
//! - [`process_lock`]: the buggy code behind a `Mutex` in the process — it
//!   serialises one replica's operations, not the replicas, so it must fail;
//! - [`watch_and_row_lock`]: Redis `WATCH`/`MULTI`/`EXEC` with retry, and a
//!   PostgreSQL transaction holding the row with `SELECT … FOR UPDATE`;
//! - [`script_and_serializable`]: a Redis Lua script, and a `SERIALIZABLE`
//!   transaction retried on serialization failure.
//!
//! They are not learner material; `fixed.rs` is the reference fix.

/// The buggy code, serialised by a process-local lock.
pub mod process_lock {
    use tokio::sync::Mutex;

    use crate::{buggy, Replica, ReplicaError};

    static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

    /// `buggy::record_like`, one at a time in this process.
    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        let _guard = ONE_AT_A_TIME.lock().await;
        buggy::record_like(replica, post_id).await
    }

    /// `buggy::credit_wallet`, one at a time in this process.
    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        let _guard = ONE_AT_A_TIME.lock().await;
        buggy::credit_wallet(replica, wallet_id, amount_cents).await
    }
}

/// Optimistic concurrency in Redis, a row lock in PostgreSQL.
pub mod watch_and_row_lock {
    use deadpool_redis::redis::{self, AsyncCommands};

    use crate::{Replica, ReplicaError};

    /// Reads under `WATCH` and writes in `MULTI`/`EXEC`, retrying when another client wrote first.
    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        let mut cache = replica.cache.get().await?;
        let key = format!("likes:{post_id}");
        loop {
            let () = redis::cmd("WATCH")
                .arg(&key)
                .query_async(&mut *cache)
                .await?;
            let likes: Option<i64> = cache.get(&key).await?;
            replica.notifications.notify_author(post_id).await;
            let applied: Option<()> = redis::pipe()
                .atomic()
                .set(&key, likes.unwrap_or(0) + 1)
                .ignore()
                .query_async(&mut *cache)
                .await?;
            if applied.is_some() {
                return Ok(());
            }
        }
    }

    /// Locks the wallet's row for the whole read-approve-write.
    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        let mut tx = replica.db.begin().await?;
        let (balance, tips): (i64, i64) = sqlx::query_as(
            "SELECT balance_cents, tips_received FROM wallets WHERE id = $1 FOR UPDATE",
        )
        .bind(wallet_id)
        .fetch_one(&mut *tx)
        .await?;
        replica.fraud_check.approve(wallet_id, amount_cents).await;
        sqlx::query("UPDATE wallets SET balance_cents = $2, tips_received = $3 WHERE id = $1")
            .bind(wallet_id)
            .bind(balance + amount_cents)
            .bind(tips + 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A server-side script in Redis, SERIALIZABLE with retry in PostgreSQL.
pub mod script_and_serializable {
    use deadpool_redis::redis;

    use crate::{Replica, ReplicaError};

    /// Reads and writes inside one Lua script, which Redis runs without interleaving.
    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        const SCRIPT: &str =
            "local likes = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], likes + 1) return likes + 1";
        replica.notifications.notify_author(post_id).await;
        let mut cache = replica.cache.get().await?;
        let _likes: i64 = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(format!("likes:{post_id}"))
            .query_async(&mut *cache)
            .await?;
        Ok(())
    }

    /// Read-approve-write in a SERIALIZABLE transaction, retried when PostgreSQL
    /// refuses to commit it (SQLSTATE 40001): a retried attempt wrote nothing.
    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        loop {
            let attempt = async {
                let mut tx = replica.db.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    .execute(&mut *tx)
                    .await?;
                let (balance, tips): (i64, i64) = sqlx::query_as(
                    "SELECT balance_cents, tips_received FROM wallets WHERE id = $1",
                )
                .bind(wallet_id)
                .fetch_one(&mut *tx)
                .await?;
                replica.fraud_check.approve(wallet_id, amount_cents).await;
                sqlx::query(
                    "UPDATE wallets SET balance_cents = $2, tips_received = $3 WHERE id = $1",
                )
                .bind(wallet_id)
                .bind(balance + amount_cents)
                .bind(tips + 1)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("40001") => {
                    continue
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
