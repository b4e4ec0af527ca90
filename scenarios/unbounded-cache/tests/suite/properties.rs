//! For random sequences of views, price changes and waits, the fixed service
//! returns exactly what the database holds: the right product for every id,
//! nothing for ids that do not exist, and no stale price once its TTL is over.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use debuglab_harness::testing::TestDatabase;
use debuglab_harness::PoolSettings;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use unbounded_cache::{
    fixed::ProductPages, render_page, seeded_product, CacheConfig, Product, ProductPageApi,
    CATALOGUE, PRODUCTS,
};

/// Small and short-lived, so a test sees evictions and expiries.
const SMALL: CacheConfig = CacheConfig {
    max_entries: 8,
    ttl: Duration::from_millis(300),
};

const POOL: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: Duration::from_secs(10),
};

#[derive(Clone, Debug)]
enum Step {
    View(i64),
    ChangePrice(i64, i64),
    WaitPastTtl,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop_oneof![1i64..=20, Just(PRODUCTS + 1)].prop_map(Step::View),
        3 => (1i64..=20, 1i64..=99_999).prop_map(|(id, price)| Step::ChangePrice(id, price)),
        1 => Just(Step::WaitPastTtl),
    ]
}

/// Whether `page` is right for product `id`, given the prices changed so
/// far and the products changed since the last wait past the TTL (for
/// which a cached page with the old price is allowed).
fn judge_page(
    id: i64,
    page: Option<&str>,
    prices: &BTreeMap<i64, i64>,
    within_ttl: &BTreeSet<i64>,
) -> Result<(), String> {
    let Some(seeded) = seeded_product(id) else {
        return match page {
            Some(_) => Err(format!("a page for missing product {id}")),
            None => Ok(()),
        };
    };
    let current = Product {
        price_cents: prices.get(&id).copied().unwrap_or(seeded.price_cents),
        ..seeded
    };
    let right = page == Some(render_page(&current).as_str());
    let acceptable = right
        || (within_ttl.contains(&id)
            && page.is_some_and(|page| page.contains(&format!("<h1>{}</h1>", current.name))));
    match acceptable {
        true => Ok(()),
        false => Err(format!("product {id}: stale or wrong page")),
    }
}

#[test]
fn fixed_pages_match_the_database_and_expire() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 10,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), 1..30), |steps| {
        runtime
            .block_on(async {
                let test_db = TestDatabase::create("unbounded_cache_props", Some(&CATALOGUE)).await;
                let redis = debuglab_harness::redis::server()
                    .await
                    .unwrap()
                    .lease_database()
                    .await
                    .unwrap();
                let service = ProductPages::new(
                    test_db.database.pool(POOL).await.unwrap(),
                    redis.pool(POOL).await.unwrap(),
                    SMALL,
                );
                let mut admin = test_db.database.probe_connection().await.unwrap();
                let mut prices: BTreeMap<i64, i64> = BTreeMap::new();
                // Products changed since the last wait: a cached old page is allowed.
                let mut within_ttl: BTreeSet<i64> = BTreeSet::new();
                let mut verdict = Ok(());
                for step in &steps {
                    match step {
                        Step::View(id) => {
                            let page = service.page(*id).await.unwrap();
                            verdict = judge_page(*id, page.as_deref(), &prices, &within_ttl)
                                .map_err(|why| format!("{why} after {steps:?}"));
                        }
                        Step::ChangePrice(id, price) => {
                            sqlx::query("UPDATE products SET price_cents = $2 WHERE id = $1")
                                .bind(id)
                                .bind(price)
                                .execute(&mut admin)
                                .await
                                .unwrap();
                            prices.insert(*id, *price);
                            within_ttl.insert(*id);
                        }
                        Step::WaitPastTtl => {
                            // Time passing is the behaviour under test here.
                            tokio::time::sleep(SMALL.ttl + Duration::from_millis(100)).await;
                            within_ttl.clear();
                        }
                    }
                    if verdict.is_err() {
                        break;
                    }
                }
                drop(admin);
                redis.release().await;
                test_db.close().await;
                verdict
            })
            .map_err(TestCaseError::fail)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
