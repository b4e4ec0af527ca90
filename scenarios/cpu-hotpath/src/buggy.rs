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
    let total_cents = cheapest(&packs, quantity);
    // Take packs off one at a time, each time one that leaves the cheapest rest.
    let mut chosen = BTreeMap::new();
    let mut left = quantity;
    while left > 0 {
        let pack = packs
            .iter()
            .find(|pack| {
                pack.size <= left
                    && pack.price_cents + cheapest(&packs, left - pack.size)
                        == cheapest(&packs, left)
            })
            .expect("a pack of one fits any quantity");
        *chosen.entry(pack.size).or_insert(0) += 1;
        left -= pack.size;
    }
    Ok(Some(Quote {
        total_cents,
        packs: chosen,
    }))
}

/// The cheapest total for `quantity` units: for each pack that fits, its
/// price plus the cheapest total for what is left.
fn cheapest(packs: &[Pack], quantity: i64) -> i64 {
    if quantity == 0 {
        return 0;
    }
    packs
        .iter()
        .filter(|pack| pack.size <= quantity)
        .map(|pack| pack.price_cents + cheapest(packs, quantity - pack.size))
        .min()
        .unwrap_or(i64::MAX / 2)
}
