//! The shop's data: 500 products, 400 customers with 150 orders each, one to
//! four line items per order; and the page the endpoint must show, computed
//! without the database.
//!
//! Every value is a function of the order's number `g` (and the line's
//! number `k`), so the reference page of any customer can be computed in
//! Rust and compared with what the endpoint returns: a variant that returns
//! fewer orders, the wrong items or a cached page cannot pass.

use chrono::{DateTime, TimeZone, Utc};
use debuglab_harness::postgres::{DatabaseTemplate, PgConnection};
use debuglab_harness::HarnessError;
use futures::future::BoxFuture;
use sqlx::Executor;

use crate::{LineItem, OrderView};

/// Products in the catalogue; ids run from 1 to `PRODUCTS`.
pub const PRODUCTS: i64 = 500;
/// Customers; ids run from 1 to `CUSTOMERS`.
pub const CUSTOMERS: i64 = 400;
/// Orders in the seeded table: 150 per customer.
pub const ORDERS: i64 = 60_000;
/// Orders each customer has.
pub const ORDERS_PER_CUSTOMER: i64 = ORDERS / CUSTOMERS;
const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "delivered", "refunded"];
const ADJECTIVES: [&str; 20] = [
    "Linen", "Cedar", "Copper", "Wool", "Slate", "Oak", "Glass", "Canvas", "Brass", "Stone",
    "Walnut", "Cotton", "Steel", "Clay", "Bamboo", "Leather", "Marble", "Silk", "Birch", "Ash",
];
const NOUNS: [&str; 25] = [
    "Mug", "Lamp", "Chair", "Bowl", "Vase", "Towel", "Clock", "Shelf", "Stool", "Tray", "Kettle",
    "Candle", "Basket", "Rug", "Mirror", "Jar", "Plate", "Bench", "Pillow", "Frame", "Blanket",
    "Spoon", "Teapot", "Planter", "Apron",
];
/// Spreads `placed_at` over `ORDERS` distinct minutes in an order unrelated
/// to `id` (it is prime and does not divide `ORDERS`).
const SPREAD: i64 = 7_919;

fn first_order_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// The seeded name of product `id`.
pub fn product_name(id: i64) -> String {
    let index = (id - 1) as usize;
    format!("{} {}", ADJECTIVES[index % 20], NOUNS[index / 20 % 25])
}

/// The price of product `id`, in cents.
pub fn product_price(id: i64) -> i64 {
    199 + (id * 7_919) % 9_800
}

/// The line items of the seeded order number `g`, as the seed writes them.
pub fn seeded_items(g: i64) -> Vec<LineItem> {
    (1..=g % 4 + 1)
        .map(|k| {
            let product_id = (g * 31 + k * 97) % PRODUCTS + 1;
            LineItem {
                line_no: k as i32,
                product_id,
                product_name: product_name(product_id),
                quantity: ((g + k) % 3 + 1) as i32,
                unit_price_cents: product_price(product_id),
            }
        })
        .collect()
}

/// The sum of `items`, in cents.
pub fn total_of(items: &[LineItem]) -> i64 {
    items
        .iter()
        .map(|item| i64::from(item.quantity) * item.unit_price_cents)
        .sum()
}

/// The seeded order number `g` (1-based), with its items, exactly as the seed writes it.
pub fn seeded_order(g: i64) -> OrderView {
    let items = seeded_items(g);
    OrderView {
        id: g,
        placed_at: first_order_at() + chrono::Duration::minutes((g * SPREAD) % ORDERS),
        status: STATUSES[((g / 7) % 5) as usize].to_owned(),
        total_cents: total_of(&items),
        items,
    }
}

/// The customer of the seeded order number `g`.
pub fn customer_of(g: i64) -> i64 {
    g % CUSTOMERS + 1
}

/// What `order_page(customer_id, page_size)` must show on the seeded data.
pub fn reference_page(customer_id: i64, page_size: i64) -> Vec<OrderView> {
    if !(1..=CUSTOMERS).contains(&customer_id) || page_size <= 0 {
        return Vec::new();
    }
    // Orders of customer c are those with g % CUSTOMERS == c - 1.
    let first = (customer_id - 1 + CUSTOMERS - 1) % CUSTOMERS + 1;
    let mut orders: Vec<OrderView> = (first..=ORDERS)
        .step_by(CUSTOMERS as usize)
        .map(seeded_order)
        .collect();
    orders.sort_by_key(|order| std::cmp::Reverse(order.placed_at));
    orders.truncate(page_size as usize);
    orders
}

/// The seeded database, copied for every run.
pub static SHOP_TEMPLATE: DatabaseTemplate = DatabaseTemplate {
    name: "n_plus_one_shop",
    description: "seeding 60,000 orders with their line items",
    seed: seed_shop,
};

fn seed_shop(conn: &mut PgConnection) -> BoxFuture<'_, debuglab_harness::Result<()>> {
    Box::pin(async move {
        crate::BASE_MIGRATIONS
            .run_direct(&mut *conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: "n-plus-one".to_owned(),
                detail: format!("base migration failed: {error}"),
            })?;
        for (what, statement) in seed_statements() {
            conn.execute(statement.as_str())
                .await
                .map_err(HarnessError::postgres(what))?;
        }
        Ok(())
    })
}

/// The statements that write the data [`seeded_order`] describes.
fn seed_statements() -> Vec<(&'static str, String)> {
    let quoted = |words: &[&str]| {
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (adjectives, nouns, statuses) = (quoted(&ADJECTIVES), quoted(&NOUNS), quoted(&STATUSES));
    let price = |id: &str| format!("(199 + ({id} * 7919) % 9800)");
    let product = "((g * 31 + k * 97) % 500 + 1)";
    vec![
        ("seeding products", format!(
            "INSERT INTO products (id, name, price_cents)
             SELECT id, (ARRAY[{adjectives}])[(id - 1) % 20 + 1] || ' ' || (ARRAY[{nouns}])[(id - 1) / 20 % 25 + 1], {}
             FROM generate_series(1::bigint, {PRODUCTS}::bigint) AS id",
            price("id")
        )),
        ("seeding orders", format!(
            "INSERT INTO orders (id, customer_id, status, total_cents, placed_at)
             SELECT g, g % {CUSTOMERS} + 1, (ARRAY[{statuses}])[(g / 7) % 5 + 1],
                    (SELECT sum(((g + k) % 3 + 1) * {}) FROM generate_series(1::bigint, g % 4 + 1) AS k),
                    timestamptz '2024-01-01 00:00:00+00' + ((g * {SPREAD}) % {ORDERS}) * interval '1 minute'
             FROM generate_series(1::bigint, {ORDERS}::bigint) AS g",
            price(product)
        )),
        ("seeding line items", format!(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)
             SELECT g, k, {product}, (g + k) % 3 + 1, {}
             FROM generate_series(1::bigint, {ORDERS}::bigint) AS g,
                  LATERAL generate_series(1::bigint, g % 4 + 1) AS k",
            price(product)
        )),
        ("moving the order id sequence", format!(
            "SELECT setval(pg_get_serial_sequence('orders', 'id'), {ORDERS})"
        )),
        ("analysing the seeded tables", "ANALYZE products, orders, order_items".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_customer_has_a_hundred_and_fifty_orders_newest_first() {
        for customer in [1, 2, 200, CUSTOMERS] {
            let orders = reference_page(customer, 1_000);
            assert_eq!(
                orders.len() as i64,
                ORDERS_PER_CUSTOMER,
                "customer {customer}"
            );
            assert!(orders.iter().all(|order| customer_of(order.id) == customer));
            assert!(orders
                .windows(2)
                .all(|pair| pair[0].placed_at > pair[1].placed_at));
            assert_eq!(reference_page(customer, 20), orders[..20]);
        }
        assert!(reference_page(0, 20).is_empty());
        assert!(reference_page(CUSTOMERS + 1, 20).is_empty());
    }

    #[test]
    fn placing_times_are_distinct() {
        let mut minutes: Vec<i64> = (1..=ORDERS).map(|g| (g * SPREAD) % ORDERS).collect();
        minutes.sort_unstable();
        minutes.dedup();
        assert_eq!(minutes.len() as i64, ORDERS);
    }

    #[test]
    fn orders_hold_one_to_four_lines_that_add_up() {
        for g in [1, 2, 3, 4, 59_999, ORDERS] {
            let order = seeded_order(g);
            assert_eq!(order.items.len() as i64, g % 4 + 1);
            assert_eq!(order.total_cents, total_of(&order.items));
            assert!(order
                .items
                .iter()
                .all(|item| (1..=PRODUCTS).contains(&item.product_id)));
        }
        assert_eq!(product_name(1), "Linen Mug");
        assert_eq!(product_name(PRODUCTS), "Ash Apron");
    }
}
