//! The transfer endpoint, as it shipped.

use debuglab_harness::postgres::PgPool;

use crate::{fraud_check, Transfer, TransferError};

/// Moves `transfer.amount_cents` from one account to the other and writes
/// the transfer to the ledger, all in one transaction: all of it or none.
pub async fn transfer(pool: &PgPool, transfer: Transfer) -> Result<(), TransferError> {
    let mut tx = pool.begin().await?;
    let debited = sqlx::query("UPDATE accounts SET balance = balance - $1 WHERE id = $2")
        .bind(transfer.amount_cents)
        .bind(transfer.from)
        .execute(&mut *tx)
        .await?;
    if debited.rows_affected() == 0 {
        return Err(TransferError::UnknownAccount(transfer.from));
    }
    fraud_check(&transfer).await;
    let credited = sqlx::query("UPDATE accounts SET balance = balance + $1 WHERE id = $2")
        .bind(transfer.amount_cents)
        .bind(transfer.to)
        .execute(&mut *tx)
        .await?;
    if credited.rows_affected() == 0 {
        return Err(TransferError::UnknownAccount(transfer.to));
    }
    sqlx::query(
        "INSERT INTO transfers (id, from_account, to_account, amount_cents) VALUES ($1, $2, $3, $4)",
    )
    .bind(transfer.id)
    .bind(transfer.from)
    .bind(transfer.to)
    .bind(transfer.amount_cents)
    .execute(&mut *tx)
    .await?;
    // An early return above drops `tx`, which rolls it back.
    tx.commit().await?;
    Ok(())
}
