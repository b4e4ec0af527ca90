//! The checkout endpoint, as it shipped.

use deadpool_redis::redis::AsyncCommands;

use crate::{OrderRequest, Receipt, Shop, ShopError};

/// Places an order: counts it for the user, prices it, has the payment
/// provider authorise the amount, records it, and caches its status.
pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
    let mut cache = shop.cache.get().await?;
    let mut tx = shop.db.begin().await?;

    let orders_today: i64 = cache
        .incr(format!("orders_today:{}", order.user_id), 1)
        .await?;
    let price_cents: i64 = sqlx::query_scalar("SELECT price_cents FROM products WHERE id = $1")
        .bind(order.product_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ShopError::UnknownProduct(order.product_id))?;
    let total_cents = price_cents * i64::from(order.quantity);

    // The payment provider is another service, a network call away.
    let authorization = shop.payments.authorize(order.user_id, total_cents).await?;

    let order_id: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, product_id, quantity, total_cents, authorization_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(order.user_id)
    .bind(order.product_id)
    .bind(order.quantity)
    .bind(total_cents)
    .bind(&authorization)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    let () = cache
        .set_ex(format!("order_status:{order_id}"), "paid", 3600)
        .await?;
    Ok(Receipt {
        order_id,
        total_cents,
        authorization,
        orders_today,
    })
}
