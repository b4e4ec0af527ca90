//! What a scenario is, as far as the harness and the CLI are concerned.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::run::RunContext;
use crate::Service;

/// Which copy of a scenario's service code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The code with the bug: a run should reproduce the symptom.
    Buggy,
    /// The reference fix: a run should verify it.
    Fixed,
    /// The learner's copy, which starts out as the buggy code.
    Exercise,
}

impl Variant {
    /// All variants, in the order they are usually shown.
    pub const ALL: [Variant; 3] = [Variant::Buggy, Variant::Fixed, Variant::Exercise];

    /// The lowercase name used on the command line and in reports.
    pub fn id(self) -> &'static str {
        match self {
            Variant::Buggy => "buggy",
            Variant::Fixed => "fixed",
            Variant::Exercise => "exercise",
        }
    }

    /// Whether a healthy run is what this variant should produce.
    ///
    /// The exercise counts as a fix: it is done when it is healthy.
    pub fn expected_healthy(self) -> bool {
        !matches!(self, Variant::Buggy)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|variant| variant.id() == s)
            .ok_or_else(|| format!("unknown variant '{s}' (expected buggy, fixed or exercise)"))
    }
}

/// The static description of a scenario, shown by `debuglab list`.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioInfo {
    /// Stable id, also the crate's directory under `scenarios/`.
    pub id: &'static str,
    /// A short title.
    pub title: &'static str,
    /// One line on the symptom.
    pub summary: &'static str,
    /// The services a run starts.
    pub services: &'static [Service],
    /// The metric whose buggy/fixed ratio shows how clear the signal is (`make bench`).
    #[serde(skip)]
    pub signal_metric: &'static str,
    /// The figures a learner should look at first, in order (`debuglab run`).
    #[serde(skip)]
    pub key_metrics: &'static [&'static str],
    /// The scenario's README (symptom, investigation, hints, fix); the CLI
    /// reads the hints from it, so README and `debuglab hint` never disagree.
    #[serde(skip)]
    pub readme: &'static str,
}

impl ScenarioInfo {
    /// The README's hints, gentle to explicit: the text of each
    /// `<details><summary>Hint …</summary> … </details>` block.
    pub fn hints(&self) -> Vec<String> {
        let mut hints = Vec::new();
        let mut rest = self.readme;
        while let Some(start) = rest.find("<details><summary>Hint") {
            let after = &rest[start..];
            let Some(body_start) = after.find("</summary>").map(|at| at + "</summary>".len())
            else {
                break;
            };
            let Some(body_end) = after.find("</details>") else {
                break;
            };
            hints.push(after[body_start..body_end].trim().to_owned());
            rest = &after[body_end..];
        }
        hints
    }
}

/// What a scenario concludes from one run; the harness turns it into a [`crate::Report`].
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Whether the service met the scenario's objective.
    pub healthy: bool,
    /// One sentence on why, with the deciding figures.
    pub summary: String,
}

impl Verdict {
    /// The verdict of a run whose checks found `problems` (each a clause such
    /// as "the p95 latency 140 ms is over the 10 ms objective"): unhealthy,
    /// with the problems as one sentence; or, if there are none, healthy with
    /// the summary `healthy` gives.
    pub fn from_problems(problems: &[String], healthy: impl FnOnce() -> String) -> Verdict {
        if problems.is_empty() {
            return Verdict {
                healthy: true,
                summary: healthy(),
            };
        }
        let sentence = problems.join("; ") + ".";
        let mut chars = sentence.chars();
        let summary = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        Verdict {
            healthy: false,
            summary,
        }
    }
}

/// A scenario: a story, a workload, and a verdict, for each [`Variant`] of its code.
///
/// Implementations describe themselves with [`ScenarioInfo`] and, in
/// [`Scenario::run`], ask the [`RunContext`] for databases, pools and budgets,
/// drive the workload against `ctx.variant()`'s code, record metrics and
/// evidence on the context, and return the verdict.
pub trait Scenario: Send + Sync {
    /// The scenario's description.
    fn info(&self) -> &'static ScenarioInfo;

    /// Runs one variant and judges it.
    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_from_problems() {
        let healthy = Verdict::from_problems(&[], || "All good.".to_owned());
        assert!(healthy.healthy);
        assert_eq!(healthy.summary, "All good.");
        let problems = [
            "the p95 latency is high".to_owned(),
            "3 answers were wrong".to_owned(),
        ];
        let unhealthy = Verdict::from_problems(&problems, || unreachable!());
        assert!(!unhealthy.healthy);
        assert_eq!(
            unhealthy.summary,
            "The p95 latency is high; 3 answers were wrong."
        );
    }

    #[test]
    fn hints_are_read_from_the_readme() {
        let info = ScenarioInfo {
            id: "x",
            title: "X",
            summary: "x",
            services: &[],
            signal_metric: "m",
            key_metrics: &[],
            readme: "# X\n<details><summary>Hint 1 (gentle)</summary>\n\nLook.\n</details>\n\n<details><summary>Hint 2</summary>\nCloser.\n</details>",
        };
        assert_eq!(info.hints(), vec!["Look.".to_owned(), "Closer.".to_owned()]);
    }
}
