//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and another correct fix,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `code` as the exercise and returns its report.
async fn judge(code: Code) -> Report {
    judge_candidate(LockDeadlock::with_candidate(code)).await
}

/// The statements of the transfer as it shipped, for the wrong fixes that
/// keep them and change what is around them.
mod shipped {
    use debuglab_harness::postgres::PgConnection;

    use crate::{Transfer, TransferError};

    /// Adds `cents` (negative: takes) to `account`'s balance.
    pub async fn change(
        conn: &mut PgConnection,
        account: i64,
        cents: i64,
    ) -> Result<(), TransferError> {
        let updated = sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
            .bind(cents)
            .bind(account)
            .execute(conn)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(TransferError::UnknownAccount(account));
        }
        Ok(())
    }

    /// Writes `transfer` to the ledger.
    pub async fn record(conn: &mut PgConnection, transfer: &Transfer) -> Result<(), TransferError> {
        sqlx::query(
            "INSERT INTO transfers (id, from_account, to_account, amount_cents) VALUES ($1, $2, $3, $4)",
        )
        .bind(transfer.id)
        .bind(transfer.from)
        .bind(transfer.to)
        .bind(transfer.amount_cents)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// "Deadlocks are transient, just retry": the transfer as it shipped, tried
/// again whenever PostgreSQL aborts it with `deadlock detected`.
mod retries_on_deadlock {
    use crate::{buggy, PgPool, Transfer, TransferError};

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        let mut attempts = 0;
        loop {
            match buggy::transfer(pool, transfer).await {
                Err(TransferError::Database(error)) if is_deadlock(&error) && attempts < 20 => {
                    attempts += 1;
                }
                answer => return answer,
            }
        }
    }

    fn is_deadlock(error: &sqlx::Error) -> bool {
        error
            .as_database_error()
            .and_then(|error| error.code())
            .is_some_and(|code| code == "40P01")
    }
}

#[tokio::test]
async fn retrying_on_deadlock_is_not_a_fix() {
    let report = judge(code_of!(retries_on_deadlock)).await;
    assert_unhealthy_because(&report, "deadlocks in the run's database");
    assert_unhealthy_because(&report, "retrying hides a deadlock from the customer");
}

/// "Never hold two locks": the debit in one transaction, the credit and the
/// ledger in another.
mod two_transactions {
    use super::shipped;
    use crate::{fraud_check, PgPool, Transfer, TransferError};

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        let mut conn = pool.acquire().await?;
        shipped::change(&mut conn, transfer.from, -transfer.amount_cents).await?;
        fraud_check(&transfer).await;
        let mut tx = pool.begin().await?;
        shipped::change(&mut tx, transfer.to, transfer.amount_cents).await?;
        shipped::record(&mut tx, &transfer).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[tokio::test]
async fn splitting_the_transfer_in_two_transactions_is_not_a_fix() {
    let report = judge(code_of!(two_transactions)).await;
    assert_unhealthy_because(&report, "a debit was visible without its credit");
    assert_unhealthy_because(&report, "money was destroyed");
    assert_unhealthy_because(
        &report,
        "accounts off their opening balance plus the ledger",
    );
}

/// "One at a time, then": every transfer behind one lock in the process.
mod one_at_a_time {
    use tokio::sync::Mutex;

    use crate::{buggy, PgPool, Transfer, TransferError};

    static TURN: Mutex<()> = Mutex::const_new(());

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        let _turn = TURN.lock().await;
        buggy::transfer(pool, transfer).await
    }
}

#[tokio::test]
async fn taking_turns_in_the_process_is_not_a_fix() {
    let report = judge(code_of!(one_at_a_time)).await;
    assert_unhealthy_because(&report, "the transfers took turns");
    assert_unhealthy_because(&report, "several instances sharing the database");
}

/// "Let the database sort it out": the transfer as it shipped, in a
/// `SERIALIZABLE` transaction, without retrying what it aborts.
mod serializable {
    use sqlx::Executor;

    use super::shipped;
    use crate::{fraud_check, PgPool, Transfer, TransferError};

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        let mut tx = pool.begin().await?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            .await?;
        shipped::change(&mut tx, transfer.from, -transfer.amount_cents).await?;
        fraud_check(&transfer).await;
        shipped::change(&mut tx, transfer.to, transfer.amount_cents).await?;
        shipped::record(&mut tx, &transfer).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[tokio::test]
async fn serializable_without_retries_is_not_a_fix() {
    let report = judge(code_of!(serializable)).await;
    assert_unhealthy_because(&report, "transfers failed");
}

/// "A synchronous client is simpler": a blocking call before the transfer.
mod blocks_its_thread {
    use std::time::Duration;

    use crate::{fixed, PgPool, Transfer, TransferError};

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        // Stands for a blocking HTTP client call in async code.
        std::thread::sleep(Duration::from_millis(150));
        fixed::transfer(pool, transfer).await
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(code_of!(blocks_its_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: the same statements, the lower account id updated
/// first, whichever of debit and credit that is.
mod lower_id_first {
    use super::shipped;
    use crate::{fraud_check, PgPool, Transfer, TransferError};

    pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
        let mut tx = pool.begin().await?;
        let mut moves = [
            (transfer.from, -transfer.amount_cents),
            (transfer.to, transfer.amount_cents),
        ];
        moves.sort_by_key(|(account, _)| *account);
        for (account, cents) in moves {
            shipped::change(&mut tx, account, cents).await?;
            if cents < 0 {
                fraud_check(&transfer).await;
            }
        }
        shipped::record(&mut tx, &transfer).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[tokio::test]
async fn updating_the_lower_id_first_is_another_correct_fix() {
    let report = judge(code_of!(lower_id_first)).await;
    assert_fix_verified(&report);
}
