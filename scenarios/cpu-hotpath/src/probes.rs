//! What the run measures: the process's CPU time for the quotes of each
//! size (the kernel's count, so a busy machine does not inflate it), the
//! latency by size, a CPU profile of the large quotes (a flamegraph next to
//! the run's state, its top frames in the report), and a price changed
//! behind the endpoint's back; and the metrics and evidence it records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use debuglab_harness::guard::ServiceRuntime;
use debuglab_harness::plot;
use debuglab_harness::postgres::RunDatabase;
use debuglab_harness::{HarnessError, Plot, PlotKind, Result, RunContext};

use crate::verdict::{Figures, Freshness, Phase, GROWTH_BOUND};
use crate::workload::QuoteOutcome;
use crate::{data, Code, Pack, PgPool};

/// Samples a second the profiler takes.
const PROFILE_HZ: i32 = 499;

/// The product, quantity and pack whose price the freshness check changes.
const FRESHNESS_ORDER: (i64, i64, i64) = (2, 12, 12);

/// The figures of one phase: what was asked, what came back, what it cost.
pub fn phase(
    sizes: &std::ops::RangeInclusive<i64>,
    outcome: &QuoteOutcome,
    cpu: Duration,
) -> Phase {
    let mut phase = Phase {
        sizes: (*sizes.start(), *sizes.end()),
        finished: outcome.records.len(),
        unfinished: outcome.unfinished,
        ..Phase::default()
    };
    for record in &outcome.records {
        match &record.result {
            Ok((product, quantity, Some(quote))) => {
                let right = quote
                    .as_ref()
                    .is_some_and(|quote| data::is_right(quote, &data::packs(*product), *quantity));
                if !right {
                    phase.wrong_answers += 1;
                    phase.first_wrong.get_or_insert_with(|| {
                        format!(
                            "{quantity} of product {product}: {:?}, the cheapest is {:?} cents",
                            quote,
                            data::reference_total(&data::packs(*product), *quantity)
                        )
                    });
                }
            }
            Ok((_, _, None)) => phase.unfinished += 1,
            Err(_) => phase.failed += 1,
        }
    }
    phase.latencies = outcome
        .records
        .iter()
        .filter_map(|record| match &record.result {
            Ok((_, quantity, Some(_))) => Some([*quantity as f64, plot::millis(record.latency)]),
            _ => None,
        })
        .collect();
    let latencies = outcome.latencies();
    phase.cpu_ms_per_quote = cpu.as_secs_f64() * 1000.0 / phase.finished.max(1) as f64;
    phase.p50_ms = latencies.p50_ms().unwrap_or(0.0);
    phase.p99_ms = latencies.p99_ms().unwrap_or(0.0);
    phase
}

/// Asks for one order, changes the price of one of its packs (on a
/// connection of the harness's own), and asks again.
pub async fn freshness(
    ctx: &RunContext,
    database: &RunDatabase,
    service: &ServiceRuntime,
    pool: &PgPool,
    code: Code,
) -> Result<Freshness> {
    let (product, quantity, size) = FRESHNESS_ORDER;
    let ask = || {
        let pool = pool.clone();
        service.call(async move { (code.quote)(&pool, product, quantity).await })
    };
    let check = async {
        let _ = ask().await;
        let mut packs = data::packs(product);
        let changed = packs
            .iter_mut()
            .find(|pack| pack.size == size)
            .expect("the shop sells dozens");
        changed.price_cents /= 2;
        let mut probe = database.probe_connection().await?;
        sqlx::query("UPDATE packs SET price_cents = $3 WHERE product_id = $1 AND size = $2")
            .bind(product)
            .bind(size)
            .bind(changed.price_cents)
            .execute(&mut probe)
            .await
            .map_err(HarnessError::postgres("changing a price"))?;
        let answer = ask().await;
        Ok::<_, HarnessError>(fresh(&answer, &packs, quantity))
    };
    match ctx
        .within("the price change", Duration::from_secs(10), check)
        .await
    {
        Some(result) => result,
        None => Ok(Freshness {
            stale: Some("the endpoint did not answer".to_owned()),
        }),
    }
}

fn fresh(answer: &Option<crate::Answer>, packs: &[Pack], quantity: i64) -> Freshness {
    let right = matches!(answer, Some(Ok(Some(quote))) if data::is_right(quote, packs, quantity));
    Freshness {
        stale: (!right).then(|| {
            format!(
                "after the dozen's price was halved, {quantity} units were quoted {:?}; at the new \
                 price the cheapest is {:?} cents",
                answer.as_ref().map(|answer| answer.as_ref().ok().cloned()),
                data::reference_total(packs, quantity)
            )
        }),
    }
}

/// A CPU profile of the process while it runs (none if the profiler cannot start).
pub struct Profile {
    guard: Option<pprof::ProfilerGuard<'static>>,
}

/// What the profile showed.
#[derive(Default)]
pub struct Profiled {
    /// Whether the profiler ran.
    pub taken: bool,
    /// Samples taken.
    pub samples: isize,
    /// This scenario's functions by the share of samples they were on the
    /// stack for, most first.
    pub top: Vec<(String, f64)>,
    /// The flamegraph, if it was written.
    pub flamegraph: Option<PathBuf>,
}

impl Profile {
    /// Starts sampling every thread of the process.
    pub fn start() -> Profile {
        Profile {
            guard: pprof::ProfilerGuardBuilder::default()
                .frequency(PROFILE_HZ)
                .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                .build()
                .ok(),
        }
    }

    /// Stops, summarises, and writes the flamegraph under the state directory.
    pub fn finish(self, ctx: &RunContext) -> Profiled {
        let Some(report) = self.guard.and_then(|guard| guard.report().build().ok()) else {
            return Profiled::default();
        };
        let taken = true;
        let samples: isize = report.data.values().sum();
        let mut inclusive: BTreeMap<String, isize> = BTreeMap::new();
        for (frames, count) in &report.data {
            let mut seen = std::collections::BTreeSet::new();
            for symbol in frames.frames.iter().flatten() {
                let name = short_name(&symbol.name());
                if name.starts_with("cpu_hotpath")
                    && !name.contains("::probes::")
                    && !name.contains("::workload::")
                    && seen.insert(name.clone())
                {
                    *inclusive.entry(name).or_default() += count;
                }
            }
        }
        let mut top: Vec<(String, f64)> = inclusive
            .into_iter()
            .map(|(name, count)| (name, count as f64 / samples.max(1) as f64))
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(3);
        let flamegraph = write_flamegraph(ctx, &report);
        Profiled {
            taken,
            samples,
            top,
            flamegraph,
        }
    }
}

/// `cpu_hotpath::buggy::cheapest` from a demangled symbol (hash and
/// closures dropped).
fn short_name(symbol: &str) -> String {
    let name = symbol.split("::h").next().unwrap_or(symbol);
    name.split("::{{closure}}")
        .next()
        .unwrap_or(name)
        .to_owned()
}

fn write_flamegraph(ctx: &RunContext, report: &pprof::Report) -> Option<PathBuf> {
    let dir = std::env::var_os("DEBUGLAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.debuglab"))
        .join("profiles");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("cpu-hotpath-{}-{}.svg", ctx.variant(), ctx.seed()));
    let file = std::fs::File::create(&path).ok()?;
    report.flamegraph(file).ok()?;
    Some(std::fs::canonicalize(&path).unwrap_or(path))
}

/// Records the metrics and the evidence of a run.
pub fn record(ctx: &RunContext, figures: &Figures, profiled: &Profiled) {
    let (small, large) = (&figures.small, &figures.large);
    let round = |value: f64| (value * 100.0).round() / 100.0;
    for (name, value) in [
        ("cpu_ms_per_quote_small", small.cpu_ms_per_quote),
        ("cpu_ms_per_quote_large", large.cpu_ms_per_quote),
        ("cpu_growth", figures.cpu_growth()),
        ("p50_ms_small", small.p50_ms),
        ("p50_ms_large", large.p50_ms),
        ("p99_ms_large", large.p99_ms),
        (
            "wrong_answers",
            (small.wrong_answers + large.wrong_answers) as f64,
        ),
        (
            "stale_answers",
            f64::from(u8::from(figures.freshness.stale.is_some())),
        ),
        (
            "service_long_polls",
            (figures.long_polls.blocked_polls + figures.long_polls.hogging_polls) as f64,
        ),
        (
            "requests_finished",
            (small.finished + large.finished) as f64,
        ),
        ("requests_failed", (small.failed + large.failed) as f64),
    ] {
        ctx.metric(name, round(value));
    }
    for phase in [small, large] {
        ctx.evidence(format!(
            "{} quotes of {} to {} units, 2 at a time: {:.2} ms of CPU each (the kernel's count for \
             the process), latency p50 {:.1} ms, p99 {:.1} ms",
            phase.finished, phase.sizes.0, phase.sizes.1, phase.cpu_ms_per_quote, phase.p50_ms, phase.p99_ms
        ));
    }
    ctx.evidence(format!(
        "CPU per quote grew {:.1}x from the small orders to the large (bound {GROWTH_BOUND:.0}x) for \
         {:.0}x the units; the service's two workers ran {} polls of 20 ms or more (the longest {:.0} ms)",
        figures.cpu_growth(),
        large.sizes.1 as f64 / small.sizes.1.max(1) as f64,
        figures.long_polls.blocked_polls + figures.long_polls.hogging_polls,
        figures.long_polls.longest_hogging_ms.max(figures.long_polls.longest_blocked_ms)
    ));
    record_profile(ctx, profiled);
    for line in [
        &small.first_wrong,
        &large.first_wrong,
        &figures.freshness.stale,
    ]
    .into_iter()
    .flatten()
    {
        ctx.evidence(format!("wrong: {line}"));
    }
}

/// The pictures of a run: CPU per quote for small and large orders, and
/// how long each quote took by its size.
pub fn record_plots(ctx: &RunContext, figures: &Figures) {
    let (small, large) = (&figures.small, &figures.large);
    ctx.series(
        "cpu_ms_per_quote",
        [[0.0, small.cpu_ms_per_quote], [1.0, large.cpu_ms_per_quote]],
    );
    let units = |phase: &Phase| format!("{} to {} units", phase.sizes.0, phase.sizes.1);
    ctx.plot(
        Plot::new(
            "cpu",
            PlotKind::Bars,
            "The process's CPU time for one quote",
        )
        .x("order size", "")
        .y("CPU time per quote", "ms")
        .log_y()
        .categories([units(small), units(large)])
        .line("cpu_ms_per_quote", "CPU per quote (the kernel's count)"),
    );
    let mut latencies: Vec<[f64; 2]> = small
        .latencies
        .iter()
        .chain(&large.latencies)
        .copied()
        .collect();
    latencies.sort_by(|a, b| a[0].total_cmp(&b[0]));
    ctx.series("latency_by_units", latencies);
    ctx.plot(
        Plot::new(
            "latency",
            PlotKind::Points,
            "How long each quote took, by order size",
        )
        .x("units ordered", "")
        .y("latency", "ms")
        .log_y()
        .line("latency_by_units", "quotes"),
    );
}

fn record_profile(ctx: &RunContext, profiled: &Profiled) {
    if !profiled.taken {
        ctx.evidence("no CPU profile could be taken in this process");
        return;
    }
    if profiled.samples == 0 {
        ctx.evidence(format!(
            "the CPU profile of the large orders caught no sample at {PROFILE_HZ} Hz: they used too \
             little CPU to be seen"
        ));
        return;
    }
    let top = profiled
        .top
        .iter()
        .map(|(name, share)| format!("{:.0}% in `{name}`", share * 100.0))
        .collect::<Vec<_>>()
        .join(", ");
    ctx.evidence(format!(
        "CPU profile of the large orders ({} samples at {PROFILE_HZ} Hz, every thread): {}",
        profiled.samples,
        if top.is_empty() {
            "no sample in the scenario's own code".to_owned()
        } else {
            top
        }
    ));
    if let Some(path) = &profiled.flamegraph {
        ctx.evidence(format!("flamegraph: {}", path.display()));
    }
}
