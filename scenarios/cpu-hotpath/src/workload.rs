//! The traffic: baskets of a few units, then trade orders of about forty,
//! two at a time, on the service's own runtime (two workers), driven and
//! timed from the run's runtime; then a price change and the same orders
//! again.

use std::time::Duration;

use debuglab_harness::guard::{Limits, ServiceRuntime};
use debuglab_harness::workload::{Workload, WorkloadOutcome};
use debuglab_harness::{cpu, PoolSettings, Result, RunContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::probes::{self, Profile};
use crate::verdict::{Figures, Phase};
use crate::{data, Code, Quote, BASE_MIGRATIONS};

/// The pool the service gets.
pub const POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

/// The quantities the two kinds of order ask for: most baskets a handful,
/// the long tail of trade orders about forty.
pub const SMALL: std::ops::RangeInclusive<i64> = 1..=8;
/// See [`SMALL`].
pub const LARGE: std::ops::RangeInclusive<i64> = 38..=42;

/// Quotes asked for at each size, two at a time.
pub const fn workload(requests: usize) -> Workload {
    Workload {
        requests,
        concurrency: 2,
        max_duration: Duration::from_millis(1200),
        hard_limit: Duration::from_secs(15),
        live_rate: 5,
    }
}

/// Quotes of each size.
pub const REQUESTS: [usize; 2] = [40, 10];

/// The service's runtime: two workers, polls of 20 ms or more counted, one
/// still running after five seconds stuck.
pub const SERVICE_LIMITS: Limits = Limits {
    blocked_poll: Duration::from_millis(20),
    hogging_poll: Duration::from_millis(20),
    stuck: Duration::from_secs(5),
    stalled: Duration::from_secs(6),
};

/// What one quote got: the product and quantity asked for, and the answer
/// (`None`: it never came back).
pub type QuoteOutcome = WorkloadOutcome<(i64, i64, Option<Option<Quote>>), sqlx::Error>;

/// The product and quantity of quote `index` of a phase over `sizes`.
pub fn order(seed: u64, index: usize, sizes: &std::ops::RangeInclusive<i64>) -> (i64, i64) {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (
        rng.random_range(1..=data::PRODUCTS),
        rng.random_range(sizes.clone()),
    )
}

/// Runs the traffic against `code` and returns the figures the verdict is
/// made of (also recorded on `ctx`).
pub async fn run_quotes(ctx: &RunContext, code: Code) -> Result<Figures> {
    let database = ctx.database(None).await?;
    database.migrate(&BASE_MIGRATIONS, &[]).await?;
    data::open_shop(&database).await?;
    let id = ctx.info().id;
    let service = ServiceRuntime::new(id, 2, SERVICE_LIMITS)?;
    let opening = database.clone();
    let pool = service
        .set_up(id, "opening the service's pool", async move {
            opening.pool(POOL).await
        })
        .await?;
    let small = drive_phase(
        ctx,
        &service,
        &pool,
        code,
        "baskets of a few",
        SMALL,
        REQUESTS[0],
    )
    .await;
    let profile = Profile::start();
    let large = drive_phase(
        ctx,
        &service,
        &pool,
        code,
        "trade orders of about forty",
        LARGE,
        REQUESTS[1],
    )
    .await;
    let profile = profile.finish(ctx);
    let freshness = probes::freshness(ctx, &database, &service, &pool, code).await?;
    let figures = Figures {
        small,
        large,
        freshness,
        long_polls: service.monitor().blocking(),
    };
    probes::record(ctx, &figures, &profile);
    probes::record_plots(ctx, &figures);
    Ok(figures)
}

/// Drives `requests` quotes over `sizes`; returns the phase's figures.
async fn drive_phase(
    ctx: &RunContext,
    service: &ServiceRuntime,
    pool: &crate::PgPool,
    code: Code,
    label: &str,
    sizes: std::ops::RangeInclusive<i64>,
    requests: usize,
) -> Phase {
    let (service, pool, seed, range) = (service.clone(), pool.clone(), ctx.seed(), sizes.clone());
    let cpu_before = cpu::process_cpu_time();
    let outcome = ctx
        .drive(label, workload(requests), move |index| {
            let (service, pool) = (service.clone(), pool.clone());
            let (product, quantity) = order(seed, index, &range);
            async move {
                let answer = service
                    .call(async move { (code.quote)(&pool, product, quantity).await })
                    .await;
                match answer {
                    Some(Err(error)) => Err(error),
                    Some(Ok(quote)) => Ok((product, quantity, Some(quote))),
                    None => Ok((product, quantity, None)),
                }
            }
        })
        .await;
    let cpu = cpu::process_cpu_time().saturating_sub(cpu_before);
    probes::phase(&sizes, &outcome, cpu)
}
