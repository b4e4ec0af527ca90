//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `code` as the exercise and returns its report.
async fn judge(code: Code) -> Report {
    judge_candidate(SlowQuery::with_candidate(code)).await
}

/// "Just cache it": each user's answer kept in memory, in front of the
/// query as it shipped.
mod caches_answers {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    use debuglab_harness::postgres::{Migration, PgPool};

    use crate::{buggy, Order};

    pub const MIGRATIONS: &[Migration] = &[];

    static ANSWERS: Mutex<Option<HashMap<i64, Vec<Order>>>> = Mutex::new(None);

    pub async fn recent_orders(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
        let cached = ANSWERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .get(&user_id)
            .cloned();
        if let Some(orders) = cached {
            return Ok(orders);
        }
        let orders = buggy::recent_orders(pool, user_id).await?;
        ANSWERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(user_id, orders.clone());
        Ok(orders)
    }
}

#[tokio::test]
async fn caching_answers_is_not_a_fix() {
    let report = judge(code_of!(caches_answers)).await;
    assert_unhealthy_because(&report, "users did not see the order they had just placed");
    assert_unhealthy_because(&report, "hiding the slow query behind a cache is not a fix");
}

/// "The query filters on user_id, so index user_id."
mod indexes_the_user {
    use debuglab_harness::postgres::Migration;

    pub use crate::buggy::recent_orders;

    pub const MIGRATIONS: &[Migration] = &[Migration {
        version: 2,
        description: "index orders by user",
        sql: "CREATE INDEX orders_user ON orders (user_id)",
    }];
}

#[tokio::test]
async fn an_index_on_the_filter_alone_is_not_enough() {
    let report = judge(code_of!(indexes_the_user)).await;
    assert_unhealthy_because(
        &report,
        "shared buffers of PostgreSQL on average, over the bound",
    );
    assert_unhealthy_because(&report, "and sorts them, 100 rows read");
    assert_unhealthy_because(
        &report,
        "when one index serves both the filter and the order",
    );
}

/// "It sorts by created_at, so index created_at."
mod indexes_the_time {
    use debuglab_harness::postgres::Migration;

    pub use crate::buggy::recent_orders;

    pub const MIGRATIONS: &[Migration] = &[Migration {
        version: 2,
        description: "index orders by time",
        sql: "CREATE INDEX orders_time ON orders (created_at)",
    }];
}

#[tokio::test]
async fn an_index_on_the_order_alone_is_not_enough() {
    let report = judge(code_of!(indexes_the_time)).await;
    assert_unhealthy_because(
        &report,
        "shared buffers of PostgreSQL on average, over the bound",
    );
}

/// "The sort is the slow part": an index on the user, and no ORDER BY.
mod drops_the_order_by {
    use debuglab_harness::postgres::{Migration, PgPool};

    use crate::Order;

    pub const MIGRATIONS: &[Migration] = &[Migration {
        version: 2,
        description: "index orders by user",
        sql: "CREATE INDEX orders_user ON orders (user_id)",
    }];

    pub async fn recent_orders(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
        sqlx::query_as("SELECT * FROM orders WHERE user_id = $1 LIMIT 10")
            .bind(user_id)
            .fetch_all(pool)
            .await
    }
}

#[tokio::test]
async fn dropping_the_order_is_not_a_fix() {
    let report = judge(code_of!(drops_the_order_by)).await;
    assert_unhealthy_because(&report, "answers differ from the reference");
    assert_unhealthy_because(
        &report,
        "a faster query that answers another question is not a fix",
    );
}

/// "A synchronous client is simpler": a blocking call before the query.
mod blocks_its_thread {
    use std::time::Duration;

    use debuglab_harness::postgres::PgPool;

    pub use crate::fixed::MIGRATIONS;
    use crate::{fixed, Order};

    pub async fn recent_orders(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<Order>> {
        // Stands for a blocking HTTP client call in async code.
        std::thread::sleep(Duration::from_millis(150));
        fixed::recent_orders(pool, user_id).await
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(code_of!(blocks_its_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: both columns ascending (PostgreSQL reads the index
/// backwards), built without locking writes out.
mod ascending_built_concurrently {
    use debuglab_harness::postgres::Migration;

    pub use crate::buggy::recent_orders;

    pub const MIGRATIONS: &[Migration] = &[Migration {
        version: 2,
        description: "index orders by user and time, online",
        sql: "-- no-transaction\nCREATE INDEX CONCURRENTLY orders_user_time ON orders (user_id, created_at)",
    }];
}

#[tokio::test]
async fn an_ascending_index_built_concurrently_is_another_correct_fix() {
    let report = judge(code_of!(ascending_built_concurrently)).await;
    assert_fix_verified(&report);
}

/// Another correct fix: an index that holds every column the page shows,
/// so the table itself is not read.
mod covering_index {
    use debuglab_harness::postgres::Migration;

    pub use crate::buggy::recent_orders;

    pub const MIGRATIONS: &[Migration] = &[Migration {
        version: 2,
        description: "index orders by user and time, with the page's columns",
        sql: "CREATE INDEX orders_history ON orders (user_id, created_at DESC) INCLUDE (id, status, total_cents)",
    }];
}

#[tokio::test]
async fn a_covering_index_is_another_correct_fix() {
    let report = judge(code_of!(covering_index)).await;
    assert_fix_verified(&report);
}
