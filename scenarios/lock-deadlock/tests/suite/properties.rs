//! For random sequences of transfers, one at a time, the endpoint answers
//! and moves money exactly as the reference books say: the fixed variant
//! changes when the locks are taken, never what a transfer does.

use std::collections::BTreeMap;
use std::time::Duration;

use debuglab_harness::testing::TestDatabase;
use debuglab_harness::{PoolSettings, Variant};
use lock_deadlock::data::{Books, ACCOUNTS, OPENING_BALANCE_CENTS};
use lock_deadlock::{Transfer, SCENARIO};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A transfer between accounts 0 to `ACCOUNTS + 1` (the two ends unknown;
/// sometimes to itself), of up to twice an opening balance.
fn transfers() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    proptest::collection::vec(
        (
            0..=ACCOUNTS + 1,
            0..=ACCOUNTS + 1,
            1..=2 * OPENING_BALANCE_CENTS,
        ),
        1..12,
    )
}

fn books_follow_the_reference(variant: Variant, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (test_db, pool, transfer) = runtime.block_on(async {
        let test_db = TestDatabase::create(&format!("lock_deadlock_{variant}"), None).await;
        let transfer = SCENARIO.prepare(&test_db.database, variant).await.unwrap();
        let settings = PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
        };
        let pool = test_db.database.pool(settings).await.unwrap();
        (test_db, pool, transfer)
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(&transfers(), |moves| {
        runtime.block_on(reopen(&pool));
        let mut books = Books::opening();
        for (index, (from, to, amount_cents)) in moves.into_iter().enumerate() {
            let asked = Transfer {
                id: index as i64 + 1,
                from,
                to,
                amount_cents,
            };
            let want = books.apply(&asked);
            let got = runtime.block_on(transfer(&pool, asked));
            match (&want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(refusal), Err(error)) if refusal.matches(error) => {}
                _ => prop_assert!(false, "{asked:?}: got {got:?}, expected {want:?}"),
            }
        }
        prop_assert_eq!(&runtime.block_on(balances(&pool)), books.balances());
        Ok(())
    });
    runtime.block_on(async {
        pool.close().await;
        test_db.close().await;
    });
    if let Err(failure) = result {
        panic!("{variant}: {failure}");
    }
}

/// Every account back at its opening balance, the ledger empty.
async fn reopen(pool: &lock_deadlock::PgPool) {
    sqlx::query("UPDATE accounts SET balance = $1")
        .bind(OPENING_BALANCE_CENTS)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM transfers")
        .execute(pool)
        .await
        .unwrap();
}

async fn balances(pool: &lock_deadlock::PgPool) -> BTreeMap<i64, i64> {
    sqlx::query_as("SELECT id, balance FROM accounts")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn fixed_transfers_move_money_as_the_reference_books_do() {
    books_follow_the_reference(Variant::Fixed, 40);
}

#[test]
fn buggy_transfers_do_too_one_at_a_time() {
    books_follow_the_reference(Variant::Buggy, 15);
}
