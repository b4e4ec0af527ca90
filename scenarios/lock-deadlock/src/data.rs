//! The bank's accounts, and what a transfer must do to them, computed
//! without the database: a reference model of the books.

use std::collections::BTreeMap;

use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::{HarnessError, Result};

use crate::{Transfer, TransferError};

/// Accounts in the bank; ids run from 1 to `ACCOUNTS`. Few, so that the
/// traffic keeps coming back to the same ones, as a marketplace and its
/// sellers do.
pub const ACCOUNTS: i64 = 6;
/// Every account's balance when the run opens it, in cents.
pub const OPENING_BALANCE_CENTS: i64 = 1_000_000;
/// Every cent in the bank: no transfer can move more than this.
pub const TOTAL_CENTS: i64 = ACCOUNTS * OPENING_BALANCE_CENTS;

/// Opens accounts 1 to [`ACCOUNTS`], each with [`OPENING_BALANCE_CENTS`]
/// (on a connection of the harness's own).
pub async fn open_accounts(database: &RunDatabase) -> Result<()> {
    let mut conn = database.probe_connection().await?;
    sqlx::query(
        "INSERT INTO accounts (id, owner, balance)
         SELECT g, 'customer ' || g, $2 FROM generate_series(1::bigint, $1::bigint) AS g",
    )
    .bind(ACCOUNTS)
    .bind(OPENING_BALANCE_CENTS)
    .execute(&mut conn)
    .await
    .map_err(HarnessError::postgres("opening the accounts"))?;
    Ok(())
}

/// Why a transfer must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The amount is over the balance it leaves.
    InsufficientFunds,
    /// This account does not exist.
    UnknownAccount(i64),
}

impl Refusal {
    /// Whether `error` is this refusal.
    pub fn matches(self, error: &TransferError) -> bool {
        match (self, error) {
            (Refusal::InsufficientFunds, TransferError::InsufficientFunds) => true,
            (Refusal::UnknownAccount(id), TransferError::UnknownAccount(got)) => id == *got,
            _ => false,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::InsufficientFunds => f.write_str("insufficient funds"),
            Refusal::UnknownAccount(id) => write!(f, "no account {id}"),
        }
    }
}

/// The books as they must be: every account's balance, applied one
/// transfer at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Books {
    balances: BTreeMap<i64, i64>,
}

impl Books {
    /// The bank as the run opens it.
    pub fn opening() -> Books {
        Books {
            balances: (1..=ACCOUNTS)
                .map(|id| (id, OPENING_BALANCE_CENTS))
                .collect(),
        }
    }

    /// Applies `transfer`, or says why it must be refused (checked in the
    /// order the endpoint meets them: the account debited, its balance, the
    /// account credited) and changes nothing.
    pub fn apply(&mut self, transfer: &Transfer) -> std::result::Result<(), Refusal> {
        let Some(&from) = self.balances.get(&transfer.from) else {
            return Err(Refusal::UnknownAccount(transfer.from));
        };
        if from < transfer.amount_cents {
            return Err(Refusal::InsufficientFunds);
        }
        if !self.balances.contains_key(&transfer.to) {
            return Err(Refusal::UnknownAccount(transfer.to));
        }
        *self.balances.entry(transfer.from).or_default() -= transfer.amount_cents;
        *self.balances.entry(transfer.to).or_default() += transfer.amount_cents;
        Ok(())
    }

    /// Every account's balance, by id.
    pub fn balances(&self) -> &BTreeMap<i64, i64> {
        &self.balances
    }

    /// The sum of every balance.
    pub fn total(&self) -> i64 {
        self.balances.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(from: i64, to: i64, amount_cents: i64) -> Transfer {
        Transfer {
            id: 1,
            from,
            to,
            amount_cents,
        }
    }

    #[test]
    fn a_transfer_moves_money_and_keeps_the_total() {
        let mut books = Books::opening();
        books.apply(&transfer(1, 2, 250)).unwrap();
        assert_eq!(books.balances()[&1], OPENING_BALANCE_CENTS - 250);
        assert_eq!(books.balances()[&2], OPENING_BALANCE_CENTS + 250);
        assert_eq!(books.total(), TOTAL_CENTS);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut books = Books::opening();
        let unknown = ACCOUNTS + 1;
        assert_eq!(
            books.apply(&transfer(1, 2, TOTAL_CENTS)),
            Err(Refusal::InsufficientFunds)
        );
        assert_eq!(
            books.apply(&transfer(1, unknown, 5)),
            Err(Refusal::UnknownAccount(unknown))
        );
        assert_eq!(
            books.apply(&transfer(unknown, 1, 5)),
            Err(Refusal::UnknownAccount(unknown))
        );
        assert_eq!(books, Books::opening());
    }

    #[test]
    fn refusals_match_the_endpoints_errors() {
        assert!(Refusal::InsufficientFunds.matches(&TransferError::InsufficientFunds));
        assert!(Refusal::UnknownAccount(9).matches(&TransferError::UnknownAccount(9)));
        assert!(!Refusal::UnknownAccount(9).matches(&TransferError::UnknownAccount(8)));
        assert!(!Refusal::InsufficientFunds.matches(&TransferError::UnknownAccount(9)));
    }
}
