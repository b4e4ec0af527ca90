//! The program that runs a learner's exercise, and the process frame every
//! debuglab program shares.
//!
//! A learner's `exercise.rs` is never compiled into a scenario's library or
//! into the CLI: one typo there must not stop `debuglab hint`, and a fixed
//! exercise must not change what `cargo test --workspace` checks. Each
//! scenario has a binary target of its own, `<id>-exercise`, built only with
//! its `exercise` feature, whose `main` hands the learner's code to the
//! scenario and calls [`main`]. `debuglab run`, `check` and `watch` build it
//! and start it with one of:
//!
//! ```text
//! <id>-exercise run [--seed N] [--keep]   one run: {"report": …, "kept": …} as JSON on stdout
//! <id>-exercise live [--seed N]           a live run, its status on stdout, until Ctrl-C
//! <id>-exercise __replica -- ARGS         one replica process (scenarios with replicas)
//! ```

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::{Kept, Report, RunOptions, Scenario, Variant};

/// What `<id>-exercise run` prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunOutput {
    /// The run's report.
    pub report: Report,
    /// What `--keep` left running.
    pub kept: Kept,
}

#[derive(Debug, Parser)]
#[command(
    name = "exercise",
    about = "Runs a debuglab exercise; `debuglab run`, `check` and `watch` start it for you."
)]
struct Args {
    /// Log more (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run; its report (and what --keep left running) as JSON on stdout.
    Run {
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        keep: bool,
    },
    /// A live run, its status on stdout, until Ctrl-C.
    Live {
        #[arg(long)]
        seed: Option<u64>,
    },
    /// One replica process.
    #[command(name = "__replica", hide = true)]
    Replica {
        #[arg(raw = true)]
        args: Vec<String>,
    },
}

/// The `main` of an exercise's binary: runs `scenario` (which carries the
/// learner's code) as its [`Variant::Exercise`].
pub fn main(scenario: &'static dyn Scenario) -> ExitCode {
    main_with(scenario, None, std::env::args_os())
}

/// [`main`] with its arguments given (`args`, the program's name first),
/// and `stand_in`: the code of that variant runs in the exercise's place,
/// reported as the exercise (the CLI's `__exercise`, for tests and
/// instructors who want the starting copy or the reference, whatever the
/// learner's file holds).
pub fn main_with<I, T>(
    scenario: &'static dyn Scenario,
    stand_in: Option<Variant>,
    args: I,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(2);
        }
    };
    crate::terminal::init_logging(args.verbose);
    let (seed, keep, live) = match args.command {
        Command::Replica { args } => {
            return scenario.replica_main(args).unwrap_or_else(|| {
                eprintln!("error: scenario {} has no replicas", scenario.info().id);
                ExitCode::from(2)
            })
        }
        Command::Run { seed, keep } => (seed, keep, false),
        Command::Live { seed } => (seed, false, true),
    };
    if let Ok(program) = std::env::current_exe() {
        crate::replica::set_program(program, &["__replica", "--"]);
    }
    crate::terminal::Spinners::install_if_terminal();
    with_runtime(async move {
        let mut options = RunOptions::from_env()?;
        options.seed = seed.or(options.seed);
        options.keep = keep;
        let variant = stand_in.unwrap_or(Variant::Exercise);
        if live {
            crate::live::live(scenario, variant, &options).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let (mut report, kept) = crate::run_and_keep(scenario, variant, &options).await?;
        report.variant = Variant::Exercise;
        let output = RunOutput { report, kept };
        println!(
            "{}",
            serde_json::to_string(&output).expect("a report serialises")
        );
        Ok::<_, crate::HarnessError>(ExitCode::SUCCESS)
    })
}

/// Who answers Ctrl-C while [`with_runtime`]'s work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupts {
    /// The frame: it stops the work at once (exit 130).
    StopTheWork,
    /// The work itself: it waits for a child process that got the same
    /// interrupt to clean up, then returns its exit code.
    LeftToTheWork,
}

/// Runs `work` on a runtime of its own and ends the process's services
/// whatever happens: an error is printed as one line (exit 1), Ctrl-C
/// stops everything (exit 130), and the process's containers are removed
/// before it returns — unless a run kept them.
pub fn with_runtime<F, E>(work: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: std::fmt::Display,
{
    with_runtime_and(Interrupts::StopTheWork, work)
}

/// [`with_runtime`], with Ctrl-C answered as `interrupts` says.
pub fn with_runtime_and<F, E>(interrupts: Interrupts, work: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: std::fmt::Display,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            result = work => match result {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {}", one_line(&crate::redact::redact(&format!("{error:#}"))));
                    ExitCode::from(1)
                }
            },
            _ = tokio::signal::ctrl_c(), if interrupts == Interrupts::StopTheWork => {
                eprintln!("\ninterrupted; removing debuglab's containers");
                ExitCode::from(130)
            }
        }
    });
    // Stop the run's tasks first (so no pool complains about vanished
    // servers), then remove the containers before the process ends.
    runtime.shutdown_timeout(Duration::from_secs(1));
    crate::shutdown();
    code
}

/// `text` on one line: whitespace, newlines included, collapsed.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
