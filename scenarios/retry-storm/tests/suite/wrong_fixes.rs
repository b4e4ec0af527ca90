//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and another correct fix,
//! judged healthy: the verdict is about the contract, not about one crate.

use crate::*;

use debuglab_harness::testing::{
    assert_fix_verified, assert_stopped_for_blocking, assert_unhealthy_because, judge_candidate,
};
use debuglab_harness::Report;

/// Runs `reserve_stock` as the exercise and returns its report.
async fn judge(reserve_stock: ReserveStock) -> Report {
    judge_candidate(RetryStorm::with_candidate(reserve_stock)).await
}

/// Records an order's outcome as fixed.rs does (the wrong fixes differ only
/// in how they ask the warehouse).
async fn record(
    shop: &Shop,
    order: &Order,
    answer: Result<String, WarehouseError>,
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

/// "Don't hammer it": a short pause between attempts, still no limit.
mod pauses_briefly {
    use std::time::Duration;

    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let answer = loop {
            match shop.warehouse.reserve(order).await {
                Ok(ticket) => break Ok(ticket),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn a_short_pause_without_a_limit_is_not_a_fix() {
    let report = judge(reserve_stock_of!(pauses_briefly)).await;
    assert_unhealthy_because(&report, "per order (at most 4)");
    assert_unhealthy_because(
        &report,
        "after its 700 ms outage the warehouse reserved only",
    );
}

/// "Retry, but not forever": five more attempts, one right after the other.
mod retries_five_times_at_once {
    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let mut answer = shop.warehouse.reserve(order).await;
        for _ in 0..5 {
            if answer.is_ok() {
                break;
            }
            answer = shop.warehouse.reserve(order).await;
        }
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn a_limit_without_a_wait_is_not_a_fix() {
    let report = judge(reserve_stock_of!(retries_five_times_at_once)).await;
    assert_unhealthy_because(
        &report,
        "orders were answered failed while the warehouse was still down, after at most 6 attempts each",
    );
    assert_unhealthy_because(
        &report,
        "a brief outage should cost a customer a short wait",
    );
}

/// "Retries caused it, so no retries": one attempt, and the outcome recorded.
mod gives_up_at_once {
    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let answer = shop.warehouse.reserve(order).await;
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn giving_up_at_the_first_failure_is_not_a_fix() {
    let report = judge(reserve_stock_of!(gives_up_at_once)).await;
    assert_unhealthy_because(
        &report,
        "orders were answered failed while the warehouse was still down, after at most 1 attempts each",
    );
    assert_unhealthy_because(&report, "its outage lasted only 700 ms");
}

/// "Log every failure": the fixed retries, with a `failed` row per failed attempt.
mod records_every_attempt {
    use std::time::Duration;

    use backon::{ExponentialBuilder, Retryable};

    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let retries = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_millis(800))
            .with_max_times(5)
            .with_jitter();
        let attempt = || async {
            let answer = shop.warehouse.reserve(order).await;
            if let Err(error) = &answer {
                super::record(shop, order, Err(error.clone())).await.ok();
            }
            answer
        };
        let answer = attempt.retry(retries).await;
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn recording_each_attempt_is_not_a_fix() {
    let report = judge(reserve_stock_of!(records_every_attempt)).await;
    assert_unhealthy_because(
        &report,
        "orders have more than one outcome in the reservations table",
    );
    assert_unhealthy_because(
        &report,
        "an outcome is recorded once, when the order is answered",
    );
}

/// "Wait between attempts" — with a blocking sleep, in async code.
mod sleeps_on_the_thread {
    use std::time::Duration;

    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let mut answer = shop.warehouse.reserve(order).await;
        for retry in 0..5 {
            if answer.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50 << retry));
            answer = shop.warehouse.reserve(order).await;
        }
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn sleeping_on_the_thread_is_stopped_and_judged_within_the_budget() {
    let report = judge(reserve_stock_of!(sleeps_on_the_thread)).await;
    assert_stopped_for_blocking(&report);
}

/// Another correct fix, by hand: "full jitter" — a random wait up to a cap
/// that doubles after each failure — with a limit of six retries.
mod full_jitter_by_hand {
    use std::time::Duration;

    use rand::Rng;

    use crate::{Order, Reservation, Shop, ShopError};

    pub async fn reserve_stock(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
        let mut answer = shop.warehouse.reserve(order).await;
        let mut cap = Duration::from_millis(100);
        for _ in 0..6 {
            if answer.is_ok() {
                break;
            }
            let wait = cap.mul_f64(rand::rng().random_range(0.5..1.0));
            tokio::time::sleep(wait).await;
            cap = (cap * 2).min(Duration::from_secs(1));
            answer = shop.warehouse.reserve(order).await;
        }
        super::record(shop, order, answer).await
    }
}

#[tokio::test]
async fn full_jitter_by_hand_is_another_correct_fix() {
    let report = judge(reserve_stock_of!(full_jitter_by_hand)).await;
    assert_fix_verified(&report);
}
