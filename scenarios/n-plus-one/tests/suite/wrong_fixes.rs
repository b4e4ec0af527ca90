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
    judge_candidate(NPlusOne::with_candidate(code)).await
}

/// The two statements of the page as it shipped, for the wrong fixes that
/// keep them and change what is around them.
mod shipped {
    use crate::{LineItem, LineItemRow, OrderRow, PgPool};

    /// The newest `page_size` orders of `customer_id`, without their items.
    pub async fn page_orders(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderRow>> {
        sqlx::query_as(
            "SELECT id, placed_at, status, total_cents FROM orders
             WHERE customer_id = $1 ORDER BY placed_at DESC LIMIT $2",
        )
        .bind(customer_id)
        .bind(page_size)
        .fetch_all(pool)
        .await
    }

    /// The line items of one order: the statement the loop runs.
    pub async fn order_items(pool: &PgPool, order_id: i64) -> sqlx::Result<Vec<LineItem>> {
        let rows: Vec<LineItemRow> = sqlx::query_as(
            "SELECT i.order_id, i.line_no, i.product_id, p.name AS product_name,
                    i.quantity, i.unit_price_cents
             FROM order_items i JOIN products p ON p.id = i.product_id
             WHERE i.order_id = $1 ORDER BY i.line_no",
        )
        .bind(order_id)
        .fetch_all(pool)
        .await?;
        Ok(rows.into_iter().map(LineItemRow::into_item).collect())
    }
}

/// "Orders never change once placed, so keep their items": each order's
/// line items cached in memory across requests, in front of the loop as it
/// shipped.
mod caches_items {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    use super::shipped;
    use crate::{LineItem, OrderView, PgPool};

    static ITEMS: Mutex<Option<HashMap<i64, Vec<LineItem>>>> = Mutex::new(None);

    fn cached(order_id: i64) -> Option<Vec<LineItem>> {
        let mut items = ITEMS.lock().unwrap_or_else(PoisonError::into_inner);
        items
            .get_or_insert_with(HashMap::new)
            .get(&order_id)
            .cloned()
    }

    fn remember(order_id: i64, items: &[LineItem]) {
        let mut cache = ITEMS.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get_or_insert_with(HashMap::new)
            .insert(order_id, items.to_vec());
    }

    pub async fn order_page(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderView>> {
        let orders = shipped::page_orders(pool, customer_id, page_size).await?;
        let mut page = Vec::with_capacity(orders.len());
        for order in orders {
            if let Some(items) = cached(order.id) {
                page.push(order.with_items(items));
                continue;
            }
            let items = shipped::order_items(pool, order.id).await?;
            remember(order.id, &items);
            page.push(order.with_items(items));
        }
        Ok(page)
    }
}

#[tokio::test]
async fn caching_the_items_is_not_a_fix() {
    let report = judge(code_of!(caches_items)).await;
    assert_unhealthy_because(
        &report,
        "did not see the order they had just placed or a product's new name",
    );
    assert_unhealthy_because(&report, "hiding the database behind a cache is not a fix");
}

/// "Two queries are enough": the customer's whole history of line items in
/// one statement, the page's kept in Rust.
mod fetches_the_whole_history {
    use std::collections::HashMap;

    use super::shipped;
    use crate::{LineItem, LineItemRow, OrderView, PgPool};

    pub async fn order_page(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderView>> {
        let orders = shipped::page_orders(pool, customer_id, page_size).await?;
        let rows: Vec<LineItemRow> = sqlx::query_as(
            "SELECT i.order_id, i.line_no, i.product_id, p.name AS product_name,
                    i.quantity, i.unit_price_cents
             FROM order_items i JOIN products p ON p.id = i.product_id
             JOIN orders o ON o.id = i.order_id
             WHERE o.customer_id = $1 ORDER BY i.order_id, i.line_no",
        )
        .bind(customer_id)
        .fetch_all(pool)
        .await?;
        let mut items: HashMap<i64, Vec<LineItem>> = HashMap::new();
        for row in rows {
            items.entry(row.order_id).or_default().push(row.into_item());
        }
        Ok(orders
            .into_iter()
            .map(|order| {
                let lines = items.remove(&order.id).unwrap_or_default();
                order.with_items(lines)
            })
            .collect())
    }
}

#[tokio::test]
async fn fetching_the_whole_history_is_not_a_fix() {
    let report = judge(code_of!(fetches_the_whole_history)).await;
    assert_unhealthy_because(&report, "rows per page of 20 orders");
    assert_unhealthy_because(&report, "moves the database's work onto the network");
}

/// "Each query is fast, it's the waiting": the same N queries, all at once.
mod runs_them_concurrently {
    use futures::future::try_join_all;

    use super::shipped;
    use crate::{OrderView, PgPool};

    pub async fn order_page(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderView>> {
        let orders = shipped::page_orders(pool, customer_id, page_size).await?;
        try_join_all(orders.into_iter().map(|order| async move {
            let items = shipped::order_items(pool, order.id).await?;
            Ok(order.with_items(items))
        }))
        .await
    }
}

#[tokio::test]
async fn running_the_queries_at_once_is_not_a_fix() {
    let report = judge(code_of!(runs_them_concurrently)).await;
    assert_unhealthy_because(&report, "statements per page of 100 orders");
    assert_unhealthy_because(&report, "however many run at once");
}

/// "A synchronous client is simpler": a blocking call before the page.
mod blocks_its_thread {
    use std::time::Duration;

    use crate::{fixed, OrderView, PgPool};

    pub async fn order_page(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderView>> {
        // Stands for a blocking HTTP client call in async code.
        std::thread::sleep(Duration::from_millis(150));
        fixed::order_page(pool, customer_id, page_size).await
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(code_of!(blocks_its_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: one statement, the page's orders joined to their
/// items and products, the rows grouped by order in Rust.
mod one_join {
    use crate::{LineItem, OrderView, PgPool};

    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        placed_at: chrono::DateTime<chrono::Utc>,
        status: String,
        total_cents: i64,
        line_no: Option<i32>,
        product_id: Option<i64>,
        product_name: Option<String>,
        quantity: Option<i32>,
        unit_price_cents: Option<i64>,
    }

    pub async fn order_page(
        pool: &PgPool,
        customer_id: i64,
        page_size: i64,
    ) -> sqlx::Result<Vec<OrderView>> {
        let rows: Vec<Row> = sqlx::query_as(
            "WITH page AS (
                 SELECT id, placed_at, status, total_cents FROM orders
                 WHERE customer_id = $1 ORDER BY placed_at DESC LIMIT $2
             )
             SELECT o.id, o.placed_at, o.status, o.total_cents, i.line_no, i.product_id,
                    p.name AS product_name, i.quantity, i.unit_price_cents
             FROM page o
             LEFT JOIN order_items i ON i.order_id = o.id
             LEFT JOIN products p ON p.id = i.product_id
             ORDER BY o.placed_at DESC, i.line_no",
        )
        .bind(customer_id)
        .bind(page_size)
        .fetch_all(pool)
        .await?;
        let mut page: Vec<OrderView> = Vec::new();
        for row in rows {
            if page.last().is_none_or(|order| order.id != row.id) {
                page.push(OrderView {
                    id: row.id,
                    placed_at: row.placed_at,
                    status: row.status,
                    total_cents: row.total_cents,
                    items: Vec::new(),
                });
            }
            if let (
                Some(line_no),
                Some(product_id),
                Some(product_name),
                Some(quantity),
                Some(unit_price_cents),
            ) = (
                row.line_no,
                row.product_id,
                row.product_name,
                row.quantity,
                row.unit_price_cents,
            ) {
                page.last_mut().expect("pushed above").items.push(LineItem {
                    line_no,
                    product_id,
                    product_name,
                    quantity,
                    unit_price_cents,
                });
            }
        }
        Ok(page)
    }
}

#[tokio::test]
async fn one_join_grouped_in_rust_is_another_correct_fix() {
    let report = judge(code_of!(one_join)).await;
    assert_fix_verified(&report);
}
