//! The reservation endpoint, as it shipped.

use crate::{Order, Reservation, Shop, ShopError};

/// Reserves the order's items at the warehouse and records the outcome.
pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
    // The warehouse has hiccups now and then: ask again until it answers.
    let answer = loop {
        match shop.warehouse.reserve(order).await {
            Ok(ticket) => break Ok(ticket),
            Err(error) => {
                tracing::debug!(order = order.id, %error, "the warehouse failed, asking again");
            }
        }
    };
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
