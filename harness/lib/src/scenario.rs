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

impl Variant {
    /// The code a run of this variant uses: the scenario's own `buggy` or
    /// `fixed` code, or the `candidate` it was given for its exercise (the
    /// learner's, in the exercise's own program; a test's wrong fix).
    /// Without a candidate, the exercise is a setup error that says where
    /// it runs: it is never compiled into the scenario's library.
    pub fn pick<C>(
        self,
        scenario: &str,
        buggy: C,
        fixed: C,
        candidate: Option<C>,
    ) -> crate::Result<C> {
        match self {
            Variant::Buggy => Ok(buggy),
            Variant::Fixed => Ok(fixed),
            Variant::Exercise => candidate.ok_or_else(|| crate::HarnessError::Setup {
                scenario: scenario.to_owned(),
                detail: format!(
                    "the exercise runs from its own binary (`debuglab run {scenario}`)"
                ),
            }),
        }
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
    /// One line on the symptom, as a user would report it (never the cause).
    pub summary: &'static str,
    /// The services a run starts.
    pub services: &'static [Service],
    /// The metric whose buggy/fixed ratio shows how clear the signal is (`make bench`).
    #[serde(skip)]
    pub signal_metric: &'static str,
    /// The figures a learner should look at first, in order (`debuglab run`).
    #[serde(skip)]
    pub key_metrics: &'static [&'static str],
    /// The gauges a live run's status line shows ([`crate::RunContext::gauge`]).
    #[serde(skip)]
    pub live_gauges: &'static [&'static str],
    /// The scenario's `HINTS.md`: one `## Hint …` section per hint, gentle
    /// first. Shown only by `debuglab hint`, one at a time.
    #[serde(skip)]
    pub hints: &'static str,
    /// The scenario's `SOLUTION.md`: the diagnosis and the fix, explained.
    /// Shown only by `debuglab solution`.
    #[serde(skip)]
    pub solution: &'static str,
    /// `src/buggy.rs` and `src/fixed.rs`, for the diff `debuglab solution` shows.
    #[serde(skip)]
    pub sources: Sources,
}

/// The buggy and fixed code of a scenario, as text.
#[derive(Clone, Copy, Debug)]
pub struct Sources {
    /// `src/buggy.rs` (the exercise's starting copy).
    pub buggy: &'static str,
    /// `src/fixed.rs` (the reference fix).
    pub fixed: &'static str,
}

impl ScenarioInfo {
    /// The hints, gentle to explicit: the text under each `## Hint` heading of [`ScenarioInfo::hints`].
    pub fn hints(&self) -> Vec<String> {
        let mut hints: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        for line in self.hints.lines() {
            if line.starts_with("## Hint") {
                hints.extend(current.take());
                current = Some(String::new());
            } else if let Some(text) = current.as_mut() {
                text.push_str(line);
                text.push('\n');
            }
        }
        hints.extend(current);
        hints
            .into_iter()
            .map(|hint| hint.trim().to_owned())
            .collect()
    }
}

impl ScenarioInfo {
    /// The words that give the fix away, from the first line of
    /// [`ScenarioInfo::solution`]: `<!-- spoilers: one; two -->`. No text a
    /// learner sees before asking (README, reports) may contain them.
    pub fn spoilers(&self) -> Vec<&'static str> {
        let first = self.solution.lines().next().unwrap_or_default().trim();
        first
            .strip_prefix("<!-- spoilers:")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(|list| {
                list.split(';')
                    .map(str::trim)
                    .filter(|term| !term.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The spoilers `text` contains. A term in capitals (a command such as
    /// `INCR`, SQL such as `CREATE INDEX`) must match in capitals — `watch`
    /// is a debuglab command, `WATCH` a Redis one; other terms match
    /// whatever their case.
    pub fn spoilers_in(&self, text: &str) -> Vec<&'static str> {
        let lower = text.to_lowercase();
        self.spoilers()
            .into_iter()
            .filter(|term| {
                if term.chars().any(char::is_lowercase) {
                    lower.contains(&term.to_lowercase())
                } else {
                    text.contains(term)
                }
            })
            .collect()
    }
}

/// What a scenario concludes from one run; the harness turns it into a [`crate::Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the service met the scenario's objective.
    pub healthy: bool,
    /// One sentence on why, with the deciding figures.
    pub summary: String,
}

impl Verdict {
    /// The verdict of a run whose checks found `problems` (each a clause such
    /// as "the payment provider was called 0 times for 200 checkouts"):
    /// unhealthy, with the problems as one sentence; or, if there are none,
    /// healthy with the summary `healthy` gives.
    pub fn from_problems(problems: &[String], healthy: impl FnOnce() -> String) -> Verdict {
        if problems.is_empty() {
            return Verdict {
                healthy: true,
                summary: healthy(),
            };
        }
        Verdict {
            healthy: false,
            summary: sentence(problems),
        }
    }

    /// This verdict after the harness's own checks found `problems` (a
    /// blocked thread, a pool changed from inside): they come first, and
    /// make the run unhealthy.
    pub fn after_harness_checks(self, problems: &[String]) -> Verdict {
        if problems.is_empty() {
            return self;
        }
        let mut summary = sentence(problems);
        if !self.healthy {
            summary.push(' ');
            summary.push_str(&self.summary);
        }
        Verdict {
            healthy: false,
            summary,
        }
    }
}

/// The problems of a run's requests that every scenario judges alike: none
/// finished, some failed (out of those that finished), some hung (still
/// running when the workload ended).
pub fn request_problems(finished: usize, failed: usize, unfinished: usize) -> Vec<String> {
    let mut problems = Vec::new();
    if finished == 0 {
        problems.push("no request finished".to_owned());
    }
    if failed > 0 {
        problems.push(format!("{failed} of {finished} requests failed"));
    }
    if unfinished > 0 {
        problems.push(format!("{unfinished} requests hung"));
    }
    problems
}

/// `problems` as one sentence: joined with semicolons, capitalised, with a full stop.
fn sentence(problems: &[String]) -> String {
    let sentence = problems.join("; ") + ".";
    let mut chars = sentence.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A scenario: a story, a workload, and a verdict, for each [`Variant`] of its code.
///
/// Implementations describe themselves with [`ScenarioInfo`] and, in
/// [`Scenario::run`], ask the [`RunContext`] for databases, pools and budgets,
/// drive the workload against `ctx.variant()`'s code, record metrics and
/// evidence on the context, and return the verdict.
///
/// The exercise is never compiled into a scenario's library: a scenario value
/// that runs it is built by the exercise's own binary, which hands the
/// learner's code to the scenario (see [`crate::runner`]).
pub trait Scenario: Send + Sync + 'static {
    /// The scenario's description.
    fn info(&self) -> &'static ScenarioInfo;

    /// Runs one variant and judges it.
    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, Result<Verdict>>;

    /// The entry point of one replica process, for scenarios whose service
    /// runs as several processes (see [`crate::replica`]); `None` otherwise.
    fn replica_main(&self, _args: Vec<String>) -> Option<std::process::ExitCode> {
        None
    }
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
    fn request_problems_name_nothing_finished_failures_and_hangs() {
        assert!(request_problems(40, 0, 0).is_empty());
        assert_eq!(request_problems(0, 0, 0), ["no request finished"]);
        assert_eq!(
            request_problems(40, 3, 2),
            ["3 of 40 requests failed", "2 requests hung"]
        );
    }

    #[test]
    fn harness_problems_come_first_and_make_a_run_unhealthy() {
        let healthy = Verdict::from_problems(&[], || "All good.".to_owned());
        assert_eq!(healthy.clone().after_harness_checks(&[]), healthy);
        let blocked = ["a request blocked its worker thread".to_owned()];
        assert_eq!(
            healthy.after_harness_checks(&blocked),
            Verdict {
                healthy: false,
                summary: "A request blocked its worker thread.".to_owned()
            }
        );
        let unhealthy =
            Verdict::from_problems(&["3 answers were wrong".to_owned()], || unreachable!());
        assert_eq!(
            unhealthy.after_harness_checks(&blocked).summary,
            "A request blocked its worker thread. 3 answers were wrong."
        );
    }

    #[test]
    fn spoilers_are_read_from_the_solutions_first_line() {
        let listed = ScenarioInfo {
            solution: "<!-- spoilers: CREATE INDEX; idx_orders -->\n# Solution\n",
            ..info()
        };
        assert_eq!(listed.spoilers(), vec!["CREATE INDEX", "idx_orders"]);
        assert_eq!(
            listed.spoilers_in("then CREATE INDEX on it"),
            vec!["CREATE INDEX"]
        );
        assert!(listed.spoilers_in("a Seq Scan on orders").is_empty());
        let commands = ScenarioInfo {
            solution: "<!-- spoilers: WATCH; Lua script -->",
            ..info()
        };
        assert!(commands
            .spoilers_in("debuglab watch race-condition")
            .is_empty());
        assert_eq!(commands.spoilers_in("a lua Script"), vec!["Lua script"]);
        let unlisted = ScenarioInfo {
            solution: "# Solution",
            ..info()
        };
        assert!(unlisted.spoilers().is_empty());
    }

    fn info() -> ScenarioInfo {
        ScenarioInfo {
            id: "x",
            title: "X",
            summary: "x",
            services: &[],
            signal_metric: "m",
            key_metrics: &[],
            live_gauges: &[],
            hints: "",
            solution: "",
            sources: Sources {
                buggy: "",
                fixed: "",
            },
        }
    }

    #[test]
    fn hints_are_read_from_their_sections() {
        let info = ScenarioInfo {
            id: "x",
            title: "X",
            summary: "x",
            services: &[],
            signal_metric: "m",
            key_metrics: &[],
            live_gauges: &[],
            hints:
                "# Hints for X\n\n## Hint 1 (gentle)\n\nLook.\n\n## Hint 2\nCloser,\nmuch closer.\n",
            solution: "",
            sources: Sources {
                buggy: "",
                fixed: "",
            },
        };
        assert_eq!(
            info.hints(),
            vec!["Look.".to_owned(), "Closer,\nmuch closer.".to_owned()]
        );
    }
}
