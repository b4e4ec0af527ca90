//! The shop's data: a million orders over ten thousand users, and the answer
//! the endpoint must give, computed without the database.
//!
//! Every value is a function of the order's number `g`, so the reference
//! answer for any user can be computed in Rust and compared with what the
//! endpoint returns: a variant that returns fewer rows, the wrong rows or a
//! cached answer cannot pass.

use chrono::{DateTime, TimeZone, Utc};
use debuglab_harness::postgres::{DatabaseTemplate, PgConnection};
use debuglab_harness::HarnessError;
use futures::future::BoxFuture;
use sqlx::Executor;

use crate::Order;

/// Users own orders; ids run from 1 to `USERS`.
pub const USERS: i64 = 10_000;
/// Orders in the seeded table: a hundred per user.
pub const ORDERS: i64 = 1_000_000;
const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "delivered", "refunded"];
/// Multiplier that spreads `created_at` over a million distinct seconds in an
/// order unrelated to `id` (it is prime, so `g * SPREAD % ORDERS` is unique).
const SPREAD: i64 = 104_729;

fn first_order_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// The seeded order number `g` (1-based), exactly as the seed writes it.
pub fn seeded_order(g: i64) -> Order {
    Order {
        id: g,
        user_id: g % USERS + 1,
        status: STATUSES[((g / 7) % 5) as usize].to_owned(),
        total_cents: (g * 7_919) % 100_000,
        created_at: first_order_at() + chrono::Duration::seconds((g * SPREAD) % ORDERS),
    }
}

/// What `recent_orders(user_id)` must return on the seeded data.
pub fn reference_recent_orders(user_id: i64) -> Vec<Order> {
    if !(1..=USERS).contains(&user_id) {
        return Vec::new();
    }
    // Orders of user u are those with g % USERS == u - 1.
    let first = if user_id == 1 { USERS } else { user_id - 1 };
    let mut orders: Vec<Order> = (first..=ORDERS)
        .step_by(USERS as usize)
        .map(seeded_order)
        .collect();
    orders.sort_by_key(|order| std::cmp::Reverse(order.created_at));
    orders.truncate(10);
    orders
}

/// The seeded database, copied for every run (seeding takes about a second,
/// a copy a tenth of that).
pub static ORDERS_TEMPLATE: DatabaseTemplate = DatabaseTemplate {
    name: "slow_query_orders",
    description: "seeding 1,000,000 orders",
    seed: seed_orders,
};

fn seed_orders(conn: &mut PgConnection) -> BoxFuture<'_, debuglab_harness::Result<()>> {
    Box::pin(async move {
        crate::BASE_MIGRATIONS
            .run_direct(&mut *conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: "slow-query".to_owned(),
                detail: format!("base migration failed: {error}"),
            })?;
        // Rows go in faster without an index to keep up to date; the
        // primary key is built once, after them.
        conn.execute("ALTER TABLE orders DROP CONSTRAINT orders_pkey")
            .await
            .map_err(HarnessError::postgres("preparing the orders table"))?;
        let statuses = STATUSES.map(|s| format!("'{s}'")).join(",");
        let insert = format!(
            "INSERT INTO orders (id, user_id, status, total_cents, created_at)
             SELECT g,
                    g % {USERS} + 1,
                    (ARRAY[{statuses}])[(g / 7) % 5 + 1],
                    (g * 7919) % 100000,
                    timestamptz '2024-01-01 00:00:00+00' + ((g * {SPREAD}) % {ORDERS}) * interval '1 second'
             FROM generate_series(1::bigint, {ORDERS}::bigint) AS g"
        );
        conn.execute(insert.as_str())
            .await
            .map_err(HarnessError::postgres("seeding orders"))?;
        conn.execute("ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id)")
            .await
            .map_err(HarnessError::postgres("indexing the seeded orders"))?;
        conn.execute(
            format!("SELECT setval(pg_get_serial_sequence('orders', 'id'), {ORDERS})").as_str(),
        )
        .await
        .map_err(HarnessError::postgres("moving the order id sequence"))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_has_a_hundred_orders_and_gets_ten_newest_first() {
        for user in [1, 2, 5_000, USERS] {
            let orders = reference_recent_orders(user);
            assert_eq!(orders.len(), 10);
            assert!(orders.iter().all(|order| order.user_id == user));
            assert!(orders
                .windows(2)
                .all(|pair| pair[0].created_at > pair[1].created_at));
        }
        assert!(reference_recent_orders(0).is_empty());
        assert!(reference_recent_orders(USERS + 1).is_empty());
    }

    #[test]
    fn creation_times_are_distinct() {
        let mut seconds: Vec<i64> = (1..=ORDERS).map(|g| (g * SPREAD) % ORDERS).collect();
        seconds.sort_unstable();
        seconds.dedup();
        assert_eq!(seconds.len() as i64, ORDERS);
    }
}
