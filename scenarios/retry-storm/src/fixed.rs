//! The reservation endpoint, as it shipped.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::{Order, Reservation, Shop, ShopError};

/// Reserves the order's items at the warehouse and records the outcome.
pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
    // The warehouse has hiccups now and then: ask again, a few times, each
    // wait about twice the one before, at a random point of its window — so
    // that orders that failed together do not come back together, and a
    // warehouse that is down is asked less and less often.
    let retries = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(800))
        .with_max_times(5)
        .with_jitter();
    let answer = (|| shop.warehouse.reserve(order))
        .retry(retries)
        .notify(|error, wait| {
            tracing::debug!(order = order.id, %error, ?wait, "the warehouse failed, asking again");
        })
        .await;
    record_outcome(shop, order, answer).await
}

/// Records the order's outcome, `reserved` with its ticket or `failed`, and
/// answers the caller with it.
async fn record_outcome(
    shop: &Shop,
    order: &Order,
    answer: Result<String, crate::WarehouseError>,
) -> Result<Reservation, ShopError> {
    let (status, ticket) = match &answer {
        Ok(ticket) => ("reserved", Some(ticket.as_str())),
        Err(_) => ("failed", None),
    };
    sqlx::query(
        "INSERT INTO reservations (order_id, item_id, quantity, status, ticket)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order.id)
    .bind(order.item_id)
    .bind(order.quantity)
    .bind(status)
    .bind(ticket)
    .execute(&shop.db)
    .await?;
    Ok(Reservation {
        order_id: order.id,
        ticket: answer?,
    })
}
