//! A live run: the variant kept under its workload while the learner
//! investigates, with a one-line status and the commands that look inside.
//!
//! An ordinary run ends before anyone can open `psql`; by then no connection
//! is `idle in transaction` any more. A live run starts the services, prints
//! the `docker exec … psql` / `redis-cli` commands for the run's databases,
//! and keeps the workload going (at [`crate::workload::Workload::live_rate`])
//! until Ctrl-C or its budget, printing requests, errors and the scenario's
//! gauges once a second.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::report::format_number;
use crate::run::{run_observed, RunContext, RunOptions, DEFAULT_LIVE_BUDGET};
use crate::{Report, Result, Scenario, Variant};

/// Runs `variant` of `scenario` live until its budget (`options.live`, or
/// [`DEFAULT_LIVE_BUDGET`]) runs out; Ctrl-C is handled by the program.
pub async fn live(
    scenario: &'static dyn Scenario,
    variant: Variant,
    options: &RunOptions,
) -> Result<Report> {
    let budget = options.live.unwrap_or(DEFAULT_LIVE_BUDGET);
    let options = RunOptions {
        live: Some(budget),
        budget: budget + options.budget,
        ..options.clone()
    };
    let interactive = crate::terminal::stdout_is_terminal();
    let printer = Arc::new(Mutex::new(None));
    let handle = Arc::clone(&printer);
    let result = run_observed(scenario, variant, &options, move |ctx| {
        *handle.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::spawn(print_status(ctx, interactive)));
    })
    .await;
    if let Some(printer) = printer.lock().unwrap_or_else(|p| p.into_inner()).take() {
        printer.abort();
    }
    let (report, _) = result?;
    println!(
        "\nthe live run reached its {} min limit and stopped; `debuglab run {}` shows a full report",
        budget.as_secs() / 60,
        scenario.info().id
    );
    Ok(report)
}

/// Prints the investigation commands once the workload runs, then a status line every second.
async fn print_status(ctx: Arc<RunContext>, interactive: bool) {
    ctx.progress().workload_started().await;
    let kept = ctx.kept().await;
    println!(
        "{} ({}) is running under its workload; Ctrl-C stops it and removes everything.\n",
        ctx.info().id,
        ctx.variant()
    );
    println!(
        "Investigate while it happens:\n{}",
        kept.commands(interactive)
    );
    let started = Instant::now();
    let mut last = (0, started);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (finished, failed) = ctx.progress().requests();
        let now = Instant::now();
        let rate = (finished - last.0) as f64 / (now - last.1).as_secs_f64().max(1e-3);
        last = (finished, now);
        let status = Status {
            elapsed: started.elapsed(),
            finished,
            failed,
            rate,
            gauges: ctx.progress().gauges(),
        };
        let line = status.line(ctx.info().live_gauges);
        if interactive {
            print!("\r\x1b[2K{line}");
        } else {
            println!("{line}");
        }
        let _ = std::io::stdout().flush();
    }
}

/// What one status line shows.
struct Status {
    elapsed: Duration,
    finished: usize,
    failed: usize,
    rate: f64,
    gauges: BTreeMap<String, f64>,
}

impl Status {
    /// `live 1:05 · 1,234 requests (48/s) · 3 errors · idle in transaction 5`:
    /// the gauges named in `shown`, in that order, those not set yet left out.
    fn line(&self, shown: &[&str]) -> String {
        let seconds = self.elapsed.as_secs();
        let mut line = format!(
            "live {}:{:02} · {} requests ({:.0}/s) · {} errors",
            seconds / 60,
            seconds % 60,
            format_number(self.finished as f64),
            self.rate,
            format_number(self.failed as f64)
        );
        for name in shown {
            if let Some(value) = self.gauges.get(*name) {
                line.push_str(&format!(
                    " · {} {}",
                    name.replace('_', " "),
                    format_number(*value)
                ));
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_shows_requests_rate_errors_and_the_chosen_gauges() {
        let status = Status {
            elapsed: Duration::from_secs(65),
            finished: 1234,
            failed: 3,
            rate: 47.6,
            gauges: BTreeMap::from([
                ("idle_in_transaction".to_owned(), 5.0),
                ("other".to_owned(), 1.0),
            ]),
        };
        assert_eq!(
            status.line(&["idle_in_transaction", "not_yet"]),
            "live 1:05 · 1,234 requests (48/s) · 3 errors · idle in transaction 5"
        );
    }
}
