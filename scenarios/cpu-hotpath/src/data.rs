//! The shop's price list, written to PostgreSQL by the run, and the quote
//! every order must get, computed without the service: the reference.

use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::{HarnessError, Result};

use crate::{Pack, Quote};

/// Products in the shop; ids run from 1.
pub const PRODUCTS: i64 = 12;

/// Pack sizes every product is sold in.
pub const PACK_SIZES: [i64; 4] = [1, 6, 12, 24];

/// The price of a pack of `size` of `product`, in cents. The dozen is the
/// best deal per unit, the box of 24 a little worse (as shops price them):
/// the biggest pack first is not always the cheapest.
pub fn price(product: i64, size: i64) -> i64 {
    let unit = 90 + product * 7;
    match size {
        1 => unit,
        6 => unit * 6 * 92 / 100,
        12 => unit * 12 * 83 / 100,
        _ => unit * size * 87 / 100,
    }
}

/// The packs `product` is sold in, smallest first.
pub fn packs(product: i64) -> Vec<Pack> {
    PACK_SIZES
        .iter()
        .map(|&size| Pack {
            size,
            price_cents: price(product, size),
        })
        .collect()
}

/// Writes every product and its packs (on a connection of the harness's own).
pub async fn open_shop(database: &RunDatabase) -> Result<()> {
    let mut conn = database.probe_connection().await?;
    sqlx::query("INSERT INTO products (id, name) SELECT g, 'screw M' || g FROM generate_series(1::bigint, $1::bigint) AS g")
        .bind(PRODUCTS)
        .execute(&mut conn)
        .await
        .map_err(HarnessError::postgres("writing the products"))?;
    for product in 1..=PRODUCTS {
        for pack in packs(product) {
            sqlx::query("INSERT INTO packs (product_id, size, price_cents) VALUES ($1, $2, $3)")
                .bind(product)
                .bind(pack.size)
                .bind(pack.price_cents)
                .execute(&mut conn)
                .await
                .map_err(HarnessError::postgres("writing the packs"))?;
        }
    }
    Ok(())
}

/// The cheapest total for `quantity` units from `packs` (the reference:
/// every quantity up to it, cheapest first, in one table).
pub fn reference_total(packs: &[Pack], quantity: i64) -> Option<i64> {
    let mut best: Vec<Option<i64>> = vec![None; quantity.max(0) as usize + 1];
    best[0] = Some(0);
    for q in 1..best.len() {
        best[q] = packs
            .iter()
            .filter(|pack| pack.size as usize <= q)
            .filter_map(|pack| best[q - pack.size as usize].map(|rest| rest + pack.price_cents))
            .min();
    }
    best[quantity.max(0) as usize]
}

/// Whether `quote` is a right answer for `quantity` of a product sold in
/// `packs`: its packs make the quantity, cost its total, and the total is
/// the cheapest there is.
pub fn is_right(quote: &Quote, packs: &[Pack], quantity: i64) -> bool {
    let units: i64 = quote.packs.iter().map(|(size, count)| size * count).sum();
    let cost: Option<i64> = quote
        .packs
        .iter()
        .map(|(size, count)| {
            packs
                .iter()
                .find(|pack| pack.size == *size)
                .map(|pack| pack.price_cents * count)
        })
        .sum();
    units == quantity
        && cost == Some(quote.total_cents)
        && reference_total(packs, quantity) == Some(quote.total_cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_biggest_pack_first_is_not_always_cheapest() {
        let packs = packs(3);
        // 24 units: two dozens beat one box.
        assert_eq!(reference_total(&packs, 24), Some(2 * price(3, 12)));
        assert!(2 * price(3, 12) < price(3, 24));
    }

    #[test]
    fn right_quotes_make_the_quantity_at_the_cheapest_total() {
        let packs = packs(1);
        let two_dozens = Quote {
            total_cents: 2 * price(1, 12),
            packs: [(12, 2)].into_iter().collect(),
        };
        assert!(is_right(&two_dozens, &packs, 24));
        let one_box = Quote {
            total_cents: price(1, 24),
            packs: [(24, 1)].into_iter().collect(),
        };
        assert!(!is_right(&one_box, &packs, 24));
        assert!(!is_right(&two_dozens, &packs, 25));
    }
}
