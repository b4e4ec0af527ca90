//! `debuglab`: run reproducible debugging scenarios against real PostgreSQL and Redis.
//!
//! Every user mistake (a bad flag, an unknown scenario, Docker not running)
//! ends in one line on stderr and a non-zero exit: 2 for usage errors, 1 when
//! the lab cannot run, 130 after Ctrl-C.

mod lab;
mod learner;
mod scenarios;
mod state;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
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
        #[arg(long)]
        keep: bool,
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
    },
    /// Time every scenario's verdict over several runs and print medians.
    Bench {
        /// Runs per variant (after one warm-up run that starts the services).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
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
    /// Remove containers left behind by debuglab runs that were killed.
    Clean {
        /// Also remove containers of debuglab processes that are still running.
        #[arg(long)]
        all: bool,
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
    if let Command::Replica { args } = cli.command {
        let scenario = std::env::var(debuglab_harness::replica::SCENARIO_ENV).unwrap_or_default();
        return scenarios::replica_main(&scenario, args);
    }
    // Scenarios with replicas start them as `debuglab __replica -- …`.
    if let Ok(program) = std::env::current_exe() {
        debuglab_harness::replica::set_program(program, &["__replica", "--"]);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            result = execute(cli.command) => match result {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {}", one_line(&format!("{error:#}")));
                    ExitCode::from(1)
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted; removing debuglab's containers");
                ExitCode::from(130)
            }
        }
    });
    // Stop the run's tasks first (so no pool complains about vanished
    // servers), then remove the containers before the process ends.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    debuglab_harness::shutdown();
    code
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
            // clap lists the accepted values on a later line; they belong in the one line.
            let accepted = lines
                .find(|line| line.starts_with("[possible values:"))
                .map(|line| format!(" {line}"));
            eprintln!(
                "error: {message}{} (see `debuglab --help`)",
                accepted.unwrap_or_default()
            );
            ExitCode::from(2)
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { format } => {
            list(format)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            variant,
            format,
            seed,
            keep,
        } => {
            let scenario = scenarios::find(&scenario)?;
            let variant = Variant::from(variant);
            if variant == Variant::Exercise {
                learner::warn_if_stale(scenario.info().id);
            }
            terminal::Spinners::install_if_terminal();
            let mut options = RunOptions::from_env()?;
            if seed.is_some() {
                options.seed = seed;
            }
            options.keep = keep;
            let (report, kept) =
                debuglab_harness::run_and_keep(scenario, variant, &options).await?;
            learner::record_run(&report)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Text => print!(
                    "{}",
                    report
                        .render_key_figures(terminal::stdout_color(), scenario.info().key_metrics)
                ),
            }
            if keep {
                learner::print_kept(&kept);
            }
            // The run completed: the verdict is in the report, not the exit code.
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { scenario, format } => {
            let scenario = scenarios::find(&scenario)?;
            terminal::Spinners::install_if_terminal();
            learner::check(scenario, format == Format::Json).await
        }
        Command::Hint { scenario } => {
            learner::hint(scenarios::find(&scenario)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { scenario } => {
            let scenario = match scenario {
                Some(id) => scenarios::find(&id)?,
                None => learner::next_unfixed()?,
            };
            learner::watch(scenario).await
        }
        Command::Reset { scenario } => {
            learner::reset(scenarios::find(&scenario)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Progress { format } => {
            learner::progress(format == Format::Json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab { format } => {
            terminal::Spinners::install_if_terminal();
            let all_as_expected = lab::lab(format == Format::Json).await?;
            Ok(if all_as_expected {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Bench { runs, format } => {
            terminal::Spinners::install_if_terminal();
            lab::bench(runs, format == Format::Json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replica { .. } => {
            unreachable!("replicas are dispatched before the runtime starts")
        }
        Command::Clean { all } => {
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
    }
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
                "
Start with `debuglab run <id>` to see the symptom; `debuglab hint <id>` when stuck."
            );
        }
    }
    Ok(())
}
