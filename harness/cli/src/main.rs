//! `debuglab`: run reproducible debugging scenarios against real PostgreSQL and Redis.
//!
//! Every user mistake (a bad flag, an unknown scenario, Docker not running)
//! ends in one line on stderr and a non-zero exit: 2 for usage errors, 1 when
//! the lab cannot run, 130 after Ctrl-C.

// Heap figures for the scenarios that judge the heap (run in this process).
debuglab_harness::install_counting_allocator!();

mod diff;
mod exercise;
mod lab;
mod learner;
mod pictures;
mod scenarios;
mod state;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use debuglab_harness::runner::{with_runtime_and, Interrupts};
use debuglab_harness::terminal;
use debuglab_harness::{RunOptions, Variant};

/// Reproducible debugging scenarios: see a production bug happen, find it, fix it.
#[derive(Debug, Parser)]
#[command(name = "debuglab", version)]
struct Cli {
    /// Log more (-v: what the harness does, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the scenarios, in the suggested order, with your progress.
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run one variant of a scenario (your exercise by default) and print its report.
    Run {
        /// The scenario's id (see `debuglab list`).
        scenario: String,
        /// Which code to run: the bug, the reference fix, or your exercise.
        #[arg(long, value_enum, default_value_t = VariantArg::Exercise)]
        variant: VariantArg,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Seed for the workload's random choices (replays a run).
        #[arg(long)]
        seed: Option<u64>,
        /// Leave the services running to investigate with psql and redis-cli (until `debuglab clean`).
        #[arg(long, conflicts_with = "live")]
        keep: bool,
        /// Keep the workload going until Ctrl-C (15 min at most), with a live
        /// status line and the psql / redis-cli commands: investigate while it happens.
        #[arg(long)]
        live: bool,
        /// Also write the report as a self-contained HTML page with its plots
        /// (default: .debuglab/reports/<id>-<variant>.html).
        #[arg(long, value_name = "PATH", num_args = 0..=1, conflicts_with = "live")]
        html: Option<Option<PathBuf>>,
    },
    /// Run two variants of a scenario (buggy and fixed by default) and write
    /// one HTML page with both side by side, on the same axes: the picture of the fix.
    Compare {
        /// The scenario's id.
        scenario: String,
        /// The variant shown beside the fixed one: the bug, or your exercise.
        #[arg(long, value_enum, default_value_t = CompareWith::Buggy)]
        with: CompareWith,
        /// Where to write the page (default: .debuglab/reports/<id>-compare.html).
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
        /// Seed for both runs' random choices.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check your exercise: exits 0 once it is fixed.
    Check {
        /// The scenario's id.
        scenario: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show the next hint for a scenario (gentle first, explicit last).
    Hint {
        /// The scenario's id.
        scenario: String,
    },
    /// Explain the bug and show the reference fix (asks first unless your exercise is fixed).
    Solution {
        /// The scenario's id.
        scenario: String,
        /// Show it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Re-check your exercise every time you save it.
    Watch {
        /// The scenario's id (default: the first one not fixed yet).
        scenario: Option<String>,
    },
    /// Put your exercise back to its starting copy (yours is kept as a backup).
    Reset {
        /// The scenario's id.
        scenario: String,
    },
    /// Show your progress through the scenarios.
    Progress {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run every scenario's buggy and fixed variants and print a summary table.
    Lab {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write each scenario's comparison page and an index linking
        /// them, into DIR (default: .debuglab/reports/).
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        html: Option<Option<PathBuf>>,
    },
    /// Time every scenario's verdict over several runs and print medians.
    Bench {
        /// Runs per variant (after one warm-up run that starts the services).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run every scenario's fixed variant several times while busy loops
    /// compete for the CPU: a correct fix must hold on a busy laptop.
    Stress {
        /// Runs per scenario.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        /// Busy-loop processes competing for the CPU meanwhile.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=16))]
        load: u32,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Internal: one replica process of a scenario that runs several.
    #[command(name = "__replica", hide = true)]
    Replica {
        /// The replica's own arguments, after `--`.
        #[arg(raw = true)]
        args: Vec<String>,
    },
    /// Internal: run a scenario's buggy or fixed code as its exercise, the way an
    /// exercise's own program runs (`DEBUGLAB_EXERCISE_CODE=starting|reference`).
    #[command(name = "__exercise", hide = true)]
    Exercise {
        /// The scenario's id.
        scenario: String,
        /// Whose code stands in for the exercise.
        #[arg(long = "as", value_enum)]
        stand_in: VariantArg,
        /// The exercise program's own arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Internal: a busy loop for `stress`, ending by itself after `seconds`.
    #[command(name = "__spin", hide = true)]
    Spin {
        #[arg(long)]
        seconds: u64,
    },
    /// Remove containers left behind by debuglab runs that were killed.
    Clean {
        /// Also remove containers of debuglab processes that are still running.
        #[arg(long)]
        all: bool,
        /// Instead, remove what ended debuglab processes left on the servers
        /// named by DEBUGLAB_POSTGRES_URL and DEBUGLAB_REDIS_URL: databases
        /// named `debuglab_<session>_…` and leased Redis indexes, never
        /// anything else, nor anything of a process still running.
        #[arg(long, conflicts_with = "all")]
        server: bool,
    },
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Readable text (colours on a terminal).
    Text,
    /// JSON on stdout, for scripts.
    Json,
}

/// The variant `compare` shows beside the fixed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CompareWith {
    /// The code with the bug.
    Buggy,
    /// Your exercise.
    Exercise,
}

impl From<CompareWith> for Variant {
    fn from(with: CompareWith) -> Variant {
        match with {
            CompareWith::Buggy => Variant::Buggy,
            CompareWith::Exercise => Variant::Exercise,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum VariantArg {
    Buggy,
    Fixed,
    Exercise,
}

impl From<VariantArg> for Variant {
    fn from(variant: VariantArg) -> Variant {
        match variant {
            VariantArg::Buggy => Variant::Buggy,
            VariantArg::Fixed => Variant::Fixed,
            VariantArg::Exercise => Variant::Exercise,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    terminal::init_logging(cli.verbose);
    match cli.command {
        Command::Replica { args } => return scenarios::replica_main(args),
        Command::Exercise {
            scenario,
            stand_in,
            args,
        } => return stand_in_exercise(&scenario, stand_in.into(), args),
        Command::Spin { seconds } => return lab::spin(seconds),
        _ => {}
    }
    // Scenarios with replicas start them as `debuglab __replica -- …`.
    if let Ok(program) = std::env::current_exe() {
        debuglab_harness::replica::set_program(program, &["__replica", "--"]);
    }
    // A live exercise runs in a child process that cleans up after Ctrl-C
    // itself; this process waits for it rather than leave first.
    let interrupts = match &cli.command {
        Command::Run {
            variant: VariantArg::Exercise,
            live: true,
            ..
        } => Interrupts::LeftToTheWork,
        _ => Interrupts::StopTheWork,
    };
    with_runtime_and(interrupts, async {
        match execute(cli.command).await {
            Err(error) => match error.downcast_ref::<exercise::AlreadyReported>() {
                Some(reported) => Ok(ExitCode::from(reported.0)),
                None => Err(error),
            },
            done => done,
        }
    })
}

/// `debuglab __exercise <id> --as <variant> …`: the exercise's program, with
/// the starting copy or the reference standing in for the learner's code.
fn stand_in_exercise(id: &str, stand_in: Variant, args: Vec<String>) -> ExitCode {
    match scenarios::find(id) {
        Ok(scenario) => debuglab_harness::runner::main_with(
            scenario,
            Some(stand_in),
            std::iter::once(format!("{id}-exercise")).chain(args),
        ),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Prints a clap error as one line (help and version are printed whole).
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = error.render().to_string();
            let mut lines = rendered
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty());
            let message = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            // clap puts the accepted values and a "similar argument" tip on
            // later lines; they belong in the one line.
            let extra: String = lines
                .filter(|line| line.starts_with("[possible values:") || line.starts_with("tip:"))
                .map(|line| format!(" {line}"))
                .collect();
            eprintln!("error: {message}{extra} (see `debuglab --help`)");
            ExitCode::from(2)
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { format } => list(format).map(|()| ExitCode::SUCCESS),
        Command::Run {
            scenario,
            variant,
            format,
            seed,
            keep,
            live,
            html,
        } => {
            let scenario = scenarios::find(&scenario)?;
            terminal::Spinners::install_if_terminal();
            let run = RunCommand {
                variant: variant.into(),
                seed,
                keep,
                live,
                html,
            };
            run.execute(scenario, format).await
        }
        Command::Compare {
            scenario,
            with,
            html,
            seed,
            format,
        } => {
            terminal::Spinners::install_if_terminal();
            let scenario = scenarios::find(&scenario)?;
            pictures::compare(scenario, with.into(), seed, html, format == Format::Json).await
        }
        Command::Check { scenario, format } => {
            let scenario = scenarios::find(&scenario)?;
            terminal::Spinners::install_if_terminal();
            learner::check(scenario, format == Format::Json).await
        }
        Command::Hint { scenario } => {
            learner::hint(scenarios::find(&scenario)?).map(|()| ExitCode::SUCCESS)
        }
        Command::Solution { scenario, yes } => {
            learner::solution(scenarios::find(&scenario)?, yes).map(|()| ExitCode::SUCCESS)
        }
        Command::Watch { scenario } => {
            let scenario = match scenario {
                Some(id) => scenarios::find(&id)?,
                None => learner::next_unfixed()?,
            };
            learner::watch(scenario).await
        }
        Command::Reset { scenario } => {
            learner::reset(scenarios::find(&scenario)?).map(|()| ExitCode::SUCCESS)
        }
        Command::Progress { format } => {
            learner::progress(format == Format::Json).map(|()| ExitCode::SUCCESS)
        }
        Command::Lab { format, html } => {
            terminal::Spinners::install_if_terminal();
            let all_as_expected = lab::lab(format == Format::Json, html).await?;
            // 1 when a scenario did not turn out as expected.
            Ok(ExitCode::from(u8::from(!all_as_expected)))
        }
        Command::Bench { runs, format } => {
            terminal::Spinners::install_if_terminal();
            lab::bench(runs, format == Format::Json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stress { runs, load, format } => {
            lab::stress(runs, load, format == Format::Json).await
        }
        Command::Clean { server: true, .. } => clean_servers().await,
        Command::Clean { all, .. } => clean(all).await,
        Command::Replica { .. } | Command::Exercise { .. } | Command::Spin { .. } => {
            unreachable!("internal commands are dispatched before the runtime starts")
        }
    }
}

/// `debuglab run`: one variant, once, live, or kept for investigation.
struct RunCommand {
    variant: Variant,
    seed: Option<u64>,
    keep: bool,
    live: bool,
    /// Whether to write the HTML report, and where (`None` inside: the default place).
    html: Option<Option<PathBuf>>,
}

impl RunCommand {
    async fn execute(
        self,
        scenario: &'static dyn debuglab_harness::Scenario,
        format: Format,
    ) -> anyhow::Result<ExitCode> {
        let id = scenario.info().id;
        // Where the page goes is settled first: a bad path fails before the run.
        let html = self
            .html
            .map(|path| {
                pictures::report_destination(scenario.info(), self.variant, path.as_deref())
            })
            .transpose()?;
        if self.variant == Variant::Exercise {
            let code = exercise::ExerciseCode::from_env()?;
            let program = exercise::ExerciseProgram::prepare(id, code).await?;
            if self.live {
                return program.live(self.seed).await;
            }
            let output = program.run(self.seed, self.keep).await?;
            learner::record_run(&output.report, code)?;
            return print_report(
                scenario,
                &output.report,
                &output.kept,
                self.keep,
                format,
                html,
            );
        }
        let mut options = RunOptions::from_env()?;
        options.seed = self.seed.or(options.seed);
        options.keep = self.keep;
        if self.live {
            debuglab_harness::live::live(scenario, self.variant, &options).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let (report, kept) =
            debuglab_harness::run_and_keep(scenario, self.variant, &options).await?;
        print_report(scenario, &report, &kept, self.keep, format, html)
    }
}

/// Prints a run's report (key figures first, or JSON), what `--keep` left
/// running, and where `--html` wrote its page.
fn print_report(
    scenario: &'static dyn debuglab_harness::Scenario,
    report: &debuglab_harness::Report,
    kept: &debuglab_harness::Kept,
    keep: bool,
    format: Format,
    html: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Format::Text => print!(
            "{}",
            report.render_key_figures(terminal::stdout_color(), scenario.info().key_metrics)
        ),
    }
    if keep {
        learner::print_kept(kept);
    }
    if let Some(path) = html {
        let written = pictures::write_report(scenario.info(), report, &path)?;
        pictures::say_written("HTML report", &written, format == Format::Json);
    }
    // The run completed: the verdict is in the report, not the exit code.
    Ok(ExitCode::SUCCESS)
}

/// `debuglab clean`: removes containers left by killed runs.
async fn clean(all: bool) -> anyhow::Result<ExitCode> {
    let summary = debuglab_harness::docker::remove_leftover_containers(all).await?;
    println!("removed {} debuglab container(s)", summary.removed.len());
    if !summary.still_in_use.is_empty() {
        println!(
            "left {} container(s) of debuglab processes still running ({}); `debuglab clean --all` removes them too",
            summary.still_in_use.len(),
            summary.still_in_use.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `debuglab clean --server`: removes what ended runs left on servers named by URL.
async fn clean_servers() -> anyhow::Result<ExitCode> {
    let summary = debuglab_harness::external::remove_server_leftovers().await?;
    println!(
        "removed {} debuglab database(s) and released {} Redis database(s) on {}",
        summary.databases.len(),
        summary.redis_databases.len(),
        summary.servers.join(" and ")
    );
    if summary.sessions_alive > 0 {
        println!(
            "left what {} debuglab session(s) still running hold",
            summary.sessions_alive
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(format: Format) -> anyhow::Result<()> {
    let state = state::State::load()?;
    let infos: Vec<_> = scenarios::all()
        .iter()
        .map(|scenario| scenario.info())
        .collect();
    match format {
        Format::Json => {
            let items: Vec<serde_json::Value> = infos
                .iter()
                .enumerate()
                .map(|(index, info)| {
                    let mut item = serde_json::to_value(info).expect("scenario info serialises");
                    item["order"] = serde_json::json!(index + 1);
                    item["status"] = serde_json::to_value(state.of(info.id).status())
                        .expect("status serialises");
                    item
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&items)?);
        }
        Format::Text => {
            let width = infos.iter().map(|info| info.id.len()).max().unwrap_or(0);
            for (index, info) in infos.iter().enumerate() {
                let services: Vec<&str> =
                    info.services.iter().map(|service| service.id()).collect();
                let status = state.of(info.id).status().label();
                println!(
                    "{}. {:<width$}  {:<13} {} [{}]",
                    index + 1,
                    info.id,
                    status,
                    info.title,
                    services.join(", ")
                );
                println!("   {:<width$}  {}", "", info.summary);
            }
            println!(
                "\nStart with `{}` to see the symptom; `{}` when stuck.",
                state::command("run <id>"),
                state::command("hint <id>")
            );
        }
    }
    Ok(())
}
