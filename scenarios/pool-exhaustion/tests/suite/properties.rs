//! For random request mixes, the fixed checkout answers exactly what the buggy
//! one answers when it has enough time: the fix gives connections back
//! sooner, it does not change the result.

use std::time::Duration;

use debuglab_harness::testing::TestDatabase;
use debuglab_harness::{PoolSettings, Variant};
use pool_exhaustion::{
    Authorization, OrderRequest, Payments, Receipt, Shop, BASE_MIGRATIONS, PRODUCTS, SCENARIO,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Enough for requests that run one at a time: no one ever waits.
const ROOMY: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: Duration::from_secs(30),
};

fn order() -> impl Strategy<Value = OrderRequest> {
    // Product ids beyond the catalogue on purpose: both must refuse them alike.
    (1i64..=5, 0i64..=PRODUCTS + 2, 1i32..=5).prop_map(|(user_id, product_id, quantity)| {
        OrderRequest {
            user_id,
            product_id,
            quantity,
        }
    })
}

/// A receipt with its authorisation replaced by what the provider issued it
/// for (ids are random per provider, so two runs never share one).
type Answer = Result<(i64, i64, i64, Option<Authorization>), String>;

/// Places `orders` one after another with `variant` on a fresh database and Redis database.
async fn checkout_all(variant: Variant, orders: &[OrderRequest]) -> Vec<Answer> {
    let test_db = TestDatabase::create(&format!("pool_exhaustion_{variant}"), None).await;
    test_db
        .database
        .migrate(&BASE_MIGRATIONS, &[])
        .await
        .unwrap();
    let redis = debuglab_harness::redis::server()
        .await
        .unwrap()
        .lease_database()
        .await
        .unwrap();
    let shop = Shop {
        db: test_db.database.pool(ROOMY).await.unwrap(),
        cache: redis.pool(ROOMY).await.unwrap(),
        payments: Payments::new(Duration::from_millis(1)),
    };
    let place_order = SCENARIO.place_order(variant).unwrap();
    let mut answers = Vec::new();
    for order in orders {
        answers.push(
            place_order(&shop, order)
                .await
                .map(|receipt: Receipt| {
                    let issued = shop.payments.issued(&receipt.authorization);
                    (
                        receipt.order_id,
                        receipt.total_cents,
                        receipt.orders_today,
                        issued,
                    )
                })
                .map_err(|error| error.to_string()),
        );
    }
    shop.db.close().await;
    redis.release().await;
    test_db.close().await;
    answers
}

#[test]
fn fixed_answers_exactly_what_buggy_answers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 16,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(order(), 1..12), |orders| {
        let buggy = runtime.block_on(checkout_all(Variant::Buggy, &orders));
        let fixed = runtime.block_on(checkout_all(Variant::Fixed, &orders));
        prop_assert_eq!(fixed, buggy, "orders: {:?}", orders);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
