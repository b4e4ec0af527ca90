//! For random customers and page sizes, the endpoint returns exactly the
//! reference page: the fixed variant changes how many statements a page
//! costs, never what it shows.

use debuglab_harness::testing::TestDatabase;
use debuglab_harness::{PoolSettings, Variant};
use n_plus_one::data::{reference_page, CUSTOMERS, SHOP_TEMPLATE};
use n_plus_one::{BASE_MIGRATIONS, SCENARIO};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn pages_equal_reference(variant: Variant, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let order_page = SCENARIO.code(variant).unwrap().order_page;
    let (test_db, pool) = runtime.block_on(async {
        let test_db =
            TestDatabase::create(&format!("n_plus_one_{variant}"), Some(&SHOP_TEMPLATE)).await;
        test_db
            .database
            .migrate(&BASE_MIGRATIONS, &[])
            .await
            .unwrap();
        let pool = test_db
            .database
            .pool(PoolSettings {
                max_connections: 1,
                acquire_timeout: std::time::Duration::from_secs(10),
            })
            .await
            .unwrap();
        (test_db, pool)
    });
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    // Past both ends: unknown customers, empty pages, pages longer than a history.
    let inputs = (-2i64..=CUSTOMERS + 2, 0i64..=160);
    let result = runner.run(&inputs, |(customer_id, page_size)| {
        let page = runtime
            .block_on(order_page(&pool, customer_id, page_size))
            .expect("the page is read");
        prop_assert_eq!(
            page,
            reference_page(customer_id, page_size),
            "customer {}, page of {}",
            customer_id,
            page_size
        );
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

#[test]
fn fixed_pages_equal_the_reference_for_random_customers_and_sizes() {
    pages_equal_reference(Variant::Fixed, 200);
}

#[test]
fn buggy_pages_equal_the_reference_too() {
    pages_equal_reference(Variant::Buggy, 40);
}
