//! Wrong fixes — the ways people really get this bug wrong — each judged
//! unhealthy with the problem line that says why; and another correct fix,
//! judged healthy: the verdict is about the contract, not about one fix.

use crate::*;

use debuglab_harness::testing::{assert_fix_verified, assert_unhealthy_because, judge_candidate};
use debuglab_harness::Report;

/// Runs `code` as the exercise and returns its report.
async fn judge(code: Code) -> Report {
    judge_candidate(CpuHotpath::with_candidate(code)).await
}

/// A quote from a chooser of packs: `pick(packs, left)` says which pack to
/// take next. The wrong fixes differ only in how they pick.
mod chooser {
    use std::collections::BTreeMap;

    use crate::{load_packs, Pack, PgPool, Quote};

    pub async fn quote_with(
        pool: &PgPool,
        product_id: i64,
        quantity: i64,
        pick: impl Fn(&[Pack], i64) -> Pack,
    ) -> sqlx::Result<Option<Quote>> {
        let packs = load_packs(pool, product_id).await?;
        if packs.is_empty() {
            return Ok(None);
        }
        let (mut packs_taken, mut total_cents, mut left) = (BTreeMap::new(), 0, quantity);
        while left > 0 {
            let pack = pick(&packs, left);
            *packs_taken.entry(pack.size).or_insert(0) += 1;
            total_cents += pack.price_cents;
            left -= pack.size;
        }
        Ok(Some(Quote {
            total_cents,
            packs: packs_taken,
        }))
    }
}

/// "Take the biggest pack that fits": fast, and wrong when a smaller pack
/// is the better deal.
mod biggest_first {
    use super::chooser::quote_with;
    use crate::{PgPool, Quote};

    pub async fn quote(
        pool: &PgPool,
        product_id: i64,
        quantity: i64,
    ) -> sqlx::Result<Option<Quote>> {
        quote_with(pool, product_id, quantity, |packs, left| {
            *packs
                .iter()
                .rev()
                .find(|pack| pack.size <= left)
                .expect("a single fits")
        })
        .await
    }
}

#[tokio::test]
async fn the_biggest_pack_first_is_not_a_fix() {
    let report = judge(code_of!(biggest_first)).await;
    assert_unhealthy_because(&report, "quotes are not the cheapest combination");
}

/// "Nobody needs the exact best for big orders": the search as it shipped
/// up to 24 units, the biggest pack first beyond.
mod caps_the_search {
    use crate::{buggy, PgPool, Quote};

    pub async fn quote(
        pool: &PgPool,
        product_id: i64,
        quantity: i64,
    ) -> sqlx::Result<Option<Quote>> {
        if quantity <= 24 {
            return buggy::quote(pool, product_id, quantity).await;
        }
        super::biggest_first::quote(pool, product_id, quantity).await
    }
}

#[tokio::test]
async fn capping_the_search_is_not_a_fix() {
    let report = judge(code_of!(caps_the_search)).await;
    assert_unhealthy_because(
        &report,
        "capping the order or taking the biggest pack first is not a fix",
    );
}

/// "Quotes repeat, remember them": each (product, quantity) answered once
/// and kept.
mod remembers_quotes {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::{fixed, PgPool, Quote};

    static QUOTES: Mutex<Option<HashMap<(i64, i64), Quote>>> = Mutex::new(None);

    pub async fn quote(
        pool: &PgPool,
        product_id: i64,
        quantity: i64,
    ) -> sqlx::Result<Option<Quote>> {
        let known = QUOTES
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|quotes| quotes.get(&(product_id, quantity)).cloned());
        if let Some(quote) = known {
            return Ok(Some(quote));
        }
        let answer = fixed::quote(pool, product_id, quantity).await?;
        if let Some(quote) = &answer {
            QUOTES
                .lock()
                .unwrap()
                .get_or_insert_with(HashMap::new)
                .insert((product_id, quantity), quote.clone());
        }
        Ok(answer)
    }
}

#[tokio::test]
async fn remembering_quotes_is_not_a_fix() {
    let report = judge(code_of!(remembers_quotes)).await;
    assert_unhealthy_because(&report, "remembering answers is not a fix");
}

/// Another correct fix: the recursion as it shipped, with a memo per quote.
mod memoised {
    use std::collections::HashMap;

    use super::chooser::quote_with;
    use crate::{Pack, PgPool, Quote};

    fn cheapest(packs: &[Pack], quantity: i64, memo: &mut HashMap<i64, i64>) -> i64 {
        if quantity == 0 {
            return 0;
        }
        if let Some(&known) = memo.get(&quantity) {
            return known;
        }
        let best = packs
            .iter()
            .filter(|pack| pack.size <= quantity)
            .map(|pack| pack.price_cents + cheapest(packs, quantity - pack.size, memo))
            .min()
            .unwrap_or(i64::MAX / 2);
        memo.insert(quantity, best);
        best
    }

    pub async fn quote(
        pool: &PgPool,
        product_id: i64,
        quantity: i64,
    ) -> sqlx::Result<Option<Quote>> {
        quote_with(pool, product_id, quantity, |packs, left| {
            let mut memo = HashMap::new();
            let best = cheapest(packs, left, &mut memo);
            *packs
                .iter()
                .find(|pack| {
                    pack.size <= left
                        && pack.price_cents + cheapest(packs, left - pack.size, &mut memo) == best
                })
                .expect("a single fits")
        })
        .await
    }
}

#[tokio::test]
async fn a_memo_is_another_correct_fix() {
    let report = judge(code_of!(memoised)).await;
    assert_fix_verified(&report);
}
