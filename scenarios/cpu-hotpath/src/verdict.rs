//! The verdict: a pure function of the run's figures.
//!
//! CPU time is the kernel's count for the process, compared between the
//! small and the large quotes of the same run, so neither the machine's
//! speed nor how busy it is changes the verdict; latency is the symptom,
//! reported, never judged.

use debuglab_harness::guard::Blocking;
use debuglab_harness::scenario;
use debuglab_harness::Verdict;

/// How many times the CPU per quote may grow from a few units to about
/// forty. Reading the packs costs the same for both; the arithmetic for
/// forty units, done once per quantity, is a few hundred additions.
pub const GROWTH_BOUND: f64 = 4.0;

/// What a run measured, everything the verdict looks at.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Quotes of a few units.
    pub small: Phase,
    /// Quotes of about forty.
    pub large: Phase,
    /// The quote after a price change.
    pub freshness: Freshness,
    /// What the harness's watch saw on the service's workers (shown, not judged).
    pub long_polls: Blocking,
}

impl Figures {
    /// CPU per large quote over CPU per small quote.
    pub fn cpu_growth(&self) -> f64 {
        if self.small.cpu_ms_per_quote <= 0.0 {
            return 0.0;
        }
        self.large.cpu_ms_per_quote / self.small.cpu_ms_per_quote
    }
}

/// The quotes of one size.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    /// The quantities asked for, from and to.
    pub sizes: (i64, i64),
    /// Quotes answered or failed.
    pub finished: usize,
    /// Quotes that never answered.
    pub unfinished: usize,
    /// Quotes that failed.
    pub failed: usize,
    /// Quotes that are not the cheapest right combination.
    pub wrong_answers: usize,
    /// The first, described.
    pub first_wrong: Option<String>,
    /// The process's CPU time per quote, in milliseconds.
    pub cpu_ms_per_quote: f64,
    /// Median latency (the symptom).
    pub p50_ms: f64,
    /// 99th percentile latency (the symptom).
    pub p99_ms: f64,
    /// Each answered quote's `[units, latency in ms]` (shown, not judged).
    pub latencies: Vec<[f64; 2]>,
}

/// The quote after a price change behind the endpoint's back.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// What was wrong with it, if anything.
    pub stale: Option<String>,
}

/// Judges a run by its figures.
pub fn verdict(figures: &Figures) -> Verdict {
    let (small, large) = (&figures.small, &figures.large);
    let mut problems = scenario::request_problems(
        small.finished + large.finished,
        small.failed + large.failed,
        small.unfinished + large.unfinished,
    );
    let wrong = small.wrong_answers + large.wrong_answers;
    if wrong > 0 {
        problems.push(format!(
            "{wrong} quotes are not the cheapest combination of the shop's packs; the first: {} — \
             a quote must be right for any quantity: capping the order or taking the biggest \
             pack first is not a fix",
            small
                .first_wrong
                .as_ref()
                .or(large.first_wrong.as_ref())
                .map_or("?", String::as_str)
        ));
    }
    if let Some(stale) = &figures.freshness.stale {
        problems.push(format!(
            "{stale}: quotes kept from earlier requests are wrong the moment a price changes — \
             remembering answers is not a fix"
        ));
    }
    if large.finished > 0 && small.finished > 0 && figures.cpu_growth() > GROWTH_BOUND {
        problems.push(format!(
            "a quote of {} to {} units cost {:.2} ms of CPU, {:.0}x one of {} to {} units ({:.2} ms; \
             bound {GROWTH_BOUND:.0}x), counted by the kernel for the process",
            large.sizes.0, large.sizes.1, large.cpu_ms_per_quote, figures.cpu_growth(),
            small.sizes.0, small.sizes.1, small.cpu_ms_per_quote
        ));
    }
    Verdict::from_problems(&problems, || {
        format!(
            "All {} quotes were the cheapest, and right after a price change; a quote of about \
             forty units cost {:.2} ms of CPU, {:.1}x one of a few (bound {GROWTH_BOUND:.0}x).",
            small.finished + large.finished,
            large.cpu_ms_per_quote,
            figures.cpu_growth()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Figures {
        let phase = |sizes, finished, cpu| Phase {
            sizes,
            finished,
            cpu_ms_per_quote: cpu,
            p50_ms: 2.0,
            p99_ms: 4.0,
            ..Phase::default()
        };
        Figures {
            small: phase((1, 8), 40, 0.4),
            large: phase((38, 42), 10, 0.5),
            ..Figures::default()
        }
    }

    fn problems(figures: &Figures) -> String {
        let verdict = verdict(figures);
        assert!(!verdict.healthy, "expected unhealthy: {}", verdict.summary);
        verdict.summary
    }

    #[test]
    fn a_healthy_run_says_what_held() {
        let verdict = verdict(&healthy());
        assert!(verdict.healthy, "{}", verdict.summary);
        assert_eq!(
            verdict.summary,
            "All 50 quotes were the cheapest, and right after a price change; a quote of about \
             forty units cost 0.50 ms of CPU, 1.2x one of a few (bound 4x)."
        );
    }

    #[test]
    fn cpu_that_grows_with_the_order_is_named_and_the_bound_has_an_edge() {
        let mut figures = healthy();
        figures.large.cpu_ms_per_quote = 120.0;
        let text = problems(&figures);
        assert!(
            text.contains(
                "quote of 38 to 42 units cost 120.00 ms of CPU, 300x one of 1 to 8 units"
            ),
            "{text}"
        );
        figures.large.cpu_ms_per_quote = 1.6;
        assert!(verdict(&figures).healthy);
    }

    #[test]
    fn wrong_and_stale_quotes_are_not_a_fix() {
        let mut figures = healthy();
        figures.large.wrong_answers = 3;
        figures.large.first_wrong = Some("40 of product 2".to_owned());
        assert!(problems(&figures)
            .contains("capping the order or taking the biggest pack first is not a fix"));
        let mut figures = healthy();
        figures.freshness.stale = Some("after the dozen's price was halved".to_owned());
        assert!(problems(&figures).contains("remembering answers is not a fix"));
    }

    #[test]
    fn latency_alone_never_decides_but_hangs_do() {
        let mut figures = healthy();
        figures.large.p99_ms = 9_000.0;
        assert!(verdict(&figures).healthy);
        figures.large.unfinished = 2;
        assert!(problems(&figures).contains("2 requests hung"));
    }
}
