//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and other correct fixes,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `place_order` as the exercise and returns its report.
async fn judge(place_order: PlaceOrder) -> Report {
    judge_candidate(PoolExhaustion::with_candidate(place_order)).await
}

/// "The payment call is the slow part, so don't make it": a made-up authorisation.
mod skips_the_payment_call {
    use deadpool_redis::redis::AsyncCommands;

    use crate::{OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        let mut cache = shop.cache.get().await?;
        let orders_today: i64 = cache
            .incr(format!("orders_today:{}", order.user_id), 1)
            .await?;
        let price_cents: i64 = sqlx::query_scalar("SELECT price_cents FROM products WHERE id = $1")
            .bind(order.product_id)
            .fetch_optional(&shop.db)
            .await?
            .ok_or(ShopError::UnknownProduct(order.product_id))?;
        let total_cents = price_cents * i64::from(order.quantity);
        let authorization = format!("auth-{}-{total_cents}", order.user_id);
        let order_id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (user_id, product_id, quantity, total_cents, authorization_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(order.user_id)
        .bind(order.product_id)
        .bind(order.quantity)
        .bind(total_cents)
        .bind(&authorization)
        .fetch_one(&shop.db)
        .await?;
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
}

#[tokio::test]
async fn skipping_the_payment_call_is_not_a_fix() {
    let report = judge(place_order_of!(skips_the_payment_call)).await;
    assert_unhealthy_because(
        &report,
        "payment provider was called 0 times for 200 successful checkouts",
    );
    assert_unhealthy_because(
        &report,
        "orders carry an authorisation the payment provider never issued",
    );
}

/// "Five is too few": the buggy code, after growing the Redis pool from inside.
mod grows_the_redis_pool {
    use crate::{buggy, OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        shop.cache.resize(50);
        buggy::place_order(shop, order).await
    }
}

#[tokio::test]
async fn growing_the_pool_from_inside_is_not_a_fix() {
    let report = judge(place_order_of!(grows_the_redis_pool)).await;
    assert_unhealthy_because(
        &report,
        "Redis pool was resized from 5 to 50 connections during the run",
    );
    assert_unhealthy_because(&report, "only moves the cliff");
}

/// "Just try again": the buggy code, retried whenever a pool times out.
mod retries_pool_timeouts {
    use crate::{buggy, OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        loop {
            match buggy::place_order(shop, order).await {
                Err(error) if error.pool_timeout().is_some() => continue,
                answer => return answer,
            }
        }
    }
}

#[tokio::test]
async fn retrying_until_a_connection_frees_is_not_a_fix() {
    let report = judge(place_order_of!(retries_pool_timeouts)).await;
    assert_unhealthy_because(
        &report,
        "the payment provider answered at most 5 calls at once while 50 checkouts were in flight",
    );
    assert_unhealthy_because(&report, "retrying for a connection only hides the timeouts");
}

/// "One connection fewer": the fixed code without the order status in Redis.
mod drops_the_order_status {
    use deadpool_redis::redis::AsyncCommands;

    use crate::{OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        let orders_today: i64 = {
            let mut cache = shop.cache.get().await?;
            cache
                .incr(format!("orders_today:{}", order.user_id), 1)
                .await?
        };
        let price_cents: i64 = sqlx::query_scalar("SELECT price_cents FROM products WHERE id = $1")
            .bind(order.product_id)
            .fetch_optional(&shop.db)
            .await?
            .ok_or(ShopError::UnknownProduct(order.product_id))?;
        let total_cents = price_cents * i64::from(order.quantity);
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
        .fetch_one(&shop.db)
        .await?;
        Ok(Receipt {
            order_id,
            total_cents,
            authorization,
            orders_today,
        })
    }
}

#[tokio::test]
async fn dropping_a_side_effect_is_not_a_fix() {
    let report = judge(place_order_of!(drops_the_order_status)).await;
    assert_unhealthy_because(
        &report,
        "200 of 200 orders have no order_status = paid in Redis",
    );
}

/// "A synchronous client is simpler": a blocking fraud check before paying.
mod blocks_its_thread {
    use std::time::Duration;

    use crate::{fixed, OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        // Stands for a blocking HTTP client call in async code.
        std::thread::sleep(Duration::from_millis(150));
        fixed::place_order(shop, order).await
    }
}

#[tokio::test]
async fn blocking_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(place_order_of!(blocks_its_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix: price, then pay, then one short transaction for the
/// insert, with one Redis connection for both commands afterwards.
mod pays_before_writing {
    use deadpool_redis::redis::{self, AsyncCommands};

    use crate::{OrderRequest, Receipt, Shop, ShopError};

    pub async fn place_order(shop: &Shop, order: &OrderRequest) -> Result<Receipt, ShopError> {
        let price_cents: i64 = sqlx::query_scalar("SELECT price_cents FROM products WHERE id = $1")
            .bind(order.product_id)
            .fetch_optional(&shop.db)
            .await?
            .ok_or(ShopError::UnknownProduct(order.product_id))?;
        let total_cents = price_cents * i64::from(order.quantity);
        let authorization = shop.payments.authorize(order.user_id, total_cents).await?;
        let mut tx = shop.db.begin().await?;
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
        let mut cache = shop.cache.get().await?;
        let (orders_today,): (i64,) = redis::pipe()
            .incr(format!("orders_today:{}", order.user_id), 1)
            .set_ex(format!("order_status:{order_id}"), "paid", 3600)
            .ignore()
            .query_async(&mut *cache)
            .await?;
        let _: () = cache
            .expire(format!("order_status:{order_id}"), 3600)
            .await?;
        Ok(Receipt {
            order_id,
            total_cents,
            authorization,
            orders_today,
        })
    }
}

#[tokio::test]
async fn paying_before_writing_is_another_correct_fix() {
    let report = judge(place_order_of!(pays_before_writing)).await;
    assert_fix_verified(&report);
}
