//! The order-history page, as it shipped.

use std::collections::HashMap;

use crate::{LineItem, LineItemRow, OrderRow, OrderView, PgPool};

/// The newest `page_size` orders of `customer_id`, newest first, each with
/// its line items in order and the products' names.
pub async fn order_page(
    pool: &PgPool,
    customer_id: i64,
    page_size: i64,
) -> sqlx::Result<Vec<OrderView>> {
    let orders: Vec<OrderRow> = sqlx::query_as(
        "SELECT id, placed_at, status, total_cents FROM orders
         WHERE customer_id = $1 ORDER BY placed_at DESC LIMIT $2",
    )
    .bind(customer_id)
    .bind(page_size)
    .fetch_all(pool)
    .await?;
    // One statement for the items of every order on the page, whatever its size.
    let order_ids: Vec<i64> = orders.iter().map(|order| order.id).collect();
    let items: Vec<LineItemRow> = sqlx::query_as(
        "SELECT i.order_id, i.line_no, i.product_id, p.name AS product_name,
                i.quantity, i.unit_price_cents
         FROM order_items i JOIN products p ON p.id = i.product_id
         WHERE i.order_id = ANY($1) ORDER BY i.order_id, i.line_no",
    )
    .bind(&order_ids)
    .fetch_all(pool)
    .await?;
    let mut items_by_order: HashMap<i64, Vec<LineItem>> = HashMap::new();
    for item in items {
        items_by_order
            .entry(item.order_id)
            .or_default()
            .push(item.into_item());
    }
    let mut page = Vec::with_capacity(orders.len());
    for order in orders {
        let items = items_by_order.remove(&order.id).unwrap_or_default();
        page.push(order.with_items(items));
    }
    Ok(page)
}
