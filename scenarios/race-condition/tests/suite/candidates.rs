//! Other ways to write the two operations, for the tests: wrong fixes — the
//! ways people really get this bug wrong — and other correct fixes. Not
//! learner material, and never in the library: the tests include this file,
//! and so does the replica program they start (`src/bin/replica.rs`), which
//! runs one of them by name (`--code process_lock`).
//!
//! Each module has `record_like` and `credit_wallet`; [`ALL`] lists them.

use race_condition::{code_of, Code};

/// Every candidate, under its module's name.
pub static ALL: &[Code] = &[
    code_of!(process_lock),
    code_of!(narrows_the_window),
    code_of!(skips_the_remote_calls),
    code_of!(home_made_lock),
    code_of!(one_connection_at_a_time),
    code_of!(repeats_the_remote_call),
    code_of!(blocks_its_thread),
    code_of!(optimistic_and_row_lock),
    code_of!(script_and_serializable),
];

/// Wrong: "one at a time" — the buggy code behind a lock in the process. It
/// serialises one replica's operations, not the two replicas.
pub mod process_lock {
    use tokio::sync::Mutex;

    use crate::{buggy, Replica, ReplicaError};

    static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        let _guard = ONE_AT_A_TIME.lock().await;
        buggy::record_like(replica, post_id).await
    }

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        let _guard = ONE_AT_A_TIME.lock().await;
        buggy::credit_wallet(replica, wallet_id, amount_cents).await
    }
}

/// Wrong: "the await makes the window, so read after it" — the remote call
/// first, then read and write back-to-back. The window shrinks from
/// milliseconds to one round trip; dozens of operations still fall into it.
pub mod narrows_the_window {
    use deadpool_redis::redis::AsyncCommands;

    use crate::{Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        replica.notifications.notify_author(post_id).await;
        let mut cache = replica.cache.get().await?;
        let key = format!("likes:{post_id}");
        let likes: Option<i64> = cache.get(&key).await?;
        let () = cache.set(&key, likes.unwrap_or(0) + 1).await?;
        Ok(())
    }

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        replica.fraud_check.approve(wallet_id, amount_cents).await;
        let (balance, tips): (i64, i64) =
            sqlx::query_as("SELECT balance_cents, tips_received FROM wallets WHERE id = $1")
                .bind(wallet_id)
                .fetch_one(&replica.db)
                .await?;
        sqlx::query("UPDATE wallets SET balance_cents = $2, tips_received = $3 WHERE id = $1")
            .bind(wallet_id)
            .bind(balance + amount_cents)
            .bind(tips + 1)
            .execute(&replica.db)
            .await?;
        Ok(())
    }
}

/// Wrong: "no await, no window" — the buggy code without the remote calls.
pub mod skips_the_remote_calls {
    use deadpool_redis::redis::AsyncCommands;

    use crate::{Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        let mut cache = replica.cache.get().await?;
        let key = format!("likes:{post_id}");
        let likes: Option<i64> = cache.get(&key).await?;
        let () = cache.set(&key, likes.unwrap_or(0) + 1).await?;
        Ok(())
    }

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
        sqlx::query("UPDATE wallets SET balance_cents = $2, tips_received = $3 WHERE id = $1")
            .bind(wallet_id)
            .bind(balance + amount_cents)
            .bind(tips + 1)
            .execute(&replica.db)
            .await?;
        Ok(())
    }
}

/// Wrong: "a lock in Redis, shared by the replicas" — but taken with a `GET`
/// to see whether it is free and a `SET` to take it: two replicas that both
/// see it free both take it.
pub mod home_made_lock {
    use std::time::Duration;

    use deadpool_redis::redis::AsyncCommands;

    use crate::{buggy, Replica, ReplicaError};

    async fn with_lock<T>(
        replica: &Replica,
        name: &str,
        work: impl std::future::Future<Output = Result<T, ReplicaError>>,
    ) -> Result<T, ReplicaError> {
        let key = format!("lock:{name}");
        loop {
            let mut cache = replica.cache.get().await?;
            let holder: Option<String> = cache.get(&key).await?;
            if holder.is_none() {
                let () = cache.set_ex(&key, "taken", 5).await?;
                break;
            }
            drop(cache);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let result = work.await;
        let mut cache = replica.cache.get().await?;
        let _: i64 = cache.del(&key).await?;
        result
    }

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        with_lock(
            replica,
            &format!("likes:{post_id}"),
            buggy::record_like(replica, post_id),
        )
        .await
    }

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        let work = buggy::credit_wallet(replica, wallet_id, amount_cents);
        with_lock(replica, &format!("wallet:{wallet_id}"), work).await
    }
}

/// Wrong: "one connection, one like at a time" — the buggy code after
/// shrinking the replica's Redis pool to a single connection.
pub mod one_connection_at_a_time {
    use crate::{buggy, Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        replica.cache.resize(1);
        buggy::record_like(replica, post_id).await
    }

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        buggy::credit_wallet(replica, wallet_id, amount_cents).await
    }
}

/// Wrong: "retry when someone else wrote first" — optimistic retries that
/// get the count right, but repeat the whole like, remote call included:
/// the author is notified again and again. (Its tips are the fixed code.)
pub mod repeats_the_remote_call {
    use deadpool_redis::redis::{self, AsyncCommands};

    use crate::{fixed, Replica, ReplicaError};

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

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        fixed::credit_wallet(replica, wallet_id, amount_cents).await
    }
}

/// Wrong: "a synchronous client is simpler" — a blocking call (it stands for
/// a blocking HTTP client) before the fixed code.
pub mod blocks_its_thread {
    use std::time::Duration;

    use crate::{fixed, Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        std::thread::sleep(Duration::from_millis(150));
        fixed::record_like(replica, post_id).await
    }

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        fixed::credit_wallet(replica, wallet_id, amount_cents).await
    }
}

/// Correct: optimistic in Redis (`WATCH`/`MULTI`/`EXEC`, retried when another
/// client wrote first), a row lock in PostgreSQL (`SELECT … FOR UPDATE` held
/// across the fraud check). The remote calls happen once, outside any retry.
pub mod optimistic_and_row_lock {
    use deadpool_redis::redis::{self, AsyncCommands};

    use crate::{Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        replica.notifications.notify_author(post_id).await;
        let mut cache = replica.cache.get().await?;
        let key = format!("likes:{post_id}");
        loop {
            let () = redis::cmd("WATCH")
                .arg(&key)
                .query_async(&mut *cache)
                .await?;
            let likes: Option<i64> = cache.get(&key).await?;
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

/// Correct: a Lua script in Redis (run without interleaving), a SERIALIZABLE
/// transaction in PostgreSQL retried on serialization failure — the fraud
/// check done once, before the retried part.
pub mod script_and_serializable {
    use deadpool_redis::redis;

    use crate::{Replica, ReplicaError};

    pub async fn record_like(replica: &Replica, post_id: i64) -> Result<(), ReplicaError> {
        const SCRIPT: &str = "local likes = tonumber(redis.call('GET', KEYS[1]) or '0') \
                              redis.call('SET', KEYS[1], likes + 1) return likes + 1";
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

    pub async fn credit_wallet(
        replica: &Replica,
        wallet_id: i64,
        amount_cents: i64,
    ) -> Result<(), ReplicaError> {
        replica.fraud_check.approve(wallet_id, amount_cents).await;
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
                // 40001: PostgreSQL refused to commit; the attempt wrote nothing.
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("40001") => {
                    continue
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
