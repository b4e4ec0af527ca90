//! The quote endpoint, as it shipped.

use std::collections::BTreeMap;

use crate::{load_packs, Pack, PgPool, Quote};

/// The cheapest way to buy `quantity` units of `product_id`, in the packs
/// it is sold in; `None` for a product the shop does not sell.
pub async fn quote(pool: &PgPool, product_id: i64, quantity: i64) -> sqlx::Result<Option<Quote>> {
    let packs = load_packs(pool, product_id).await?;
    if packs.is_empty() {
        return Ok(None);
    }
    let best = cheapest_up_to(&packs, quantity);
    let total_cents = best[quantity as usize].0;
    // Take packs off one at a time, each time the one the table chose.
    let mut chosen = BTreeMap::new();
    let mut left = quantity;
    while left > 0 {
        let size = best[left as usize].1;
        *chosen.entry(size).or_insert(0) += 1;
        left -= size;
    }
    Ok(Some(Quote {
        total_cents,
        packs: chosen,
    }))
}

/// The cheapest total for every quantity up to `quantity`, and the pack
/// that starts it: each computed once, from the smaller ones (O(quantity ×
/// packs) instead of a number of calls that grows exponentially).
fn cheapest_up_to(packs: &[Pack], quantity: i64) -> Vec<(i64, i64)> {
    let mut best = vec![(0, 0); quantity as usize + 1];
    for q in 1..=quantity {
        best[q as usize] = packs
            .iter()
            .filter(|pack| pack.size <= q)
            .map(|pack| {
                (
                    pack.price_cents + best[(q - pack.size) as usize].0,
                    pack.size,
                )
            })
            .min()
            .unwrap_or((i64::MAX / 2, 1));
    }
    best
}
