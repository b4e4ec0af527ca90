//! Building and starting a learner's exercise, which runs as a program of
//! its own (`<id>-exercise`, see `debuglab_harness::runner`): the CLI never
//! compiles `exercise.rs`, so a half-typed exercise stops only its own run.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use debuglab_harness::runner::RunOutput;
use debuglab_harness::Variant;
use serde::Deserialize;

use crate::state;

/// Which code an exercise run uses: `DEBUGLAB_EXERCISE_CODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExerciseCode {
    /// The learner's `src/exercise.rs` (the default).
    Yours,
    /// The exercise as it starts (`src/buggy.rs`), whatever the learner did:
    /// for tests and instructors.
    Starting,
    /// The reference fix (`src/fixed.rs`).
    Reference,
}

impl ExerciseCode {
    /// From `DEBUGLAB_EXERCISE_CODE`: `yours` (default), `starting` or `reference`.
    pub fn from_env() -> anyhow::Result<ExerciseCode> {
        match std::env::var("DEBUGLAB_EXERCISE_CODE").as_deref() {
            Err(_) | Ok("") | Ok("yours") => Ok(ExerciseCode::Yours),
            Ok("starting") => Ok(ExerciseCode::Starting),
            Ok("reference") => Ok(ExerciseCode::Reference),
            Ok(other) => bail!(
                "DEBUGLAB_EXERCISE_CODE is not valid: expected yours, starting or reference, got '{other}'"
            ),
        }
    }

    /// The variant whose code stands in for the exercise, if not the learner's.
    pub fn stand_in(self) -> Option<Variant> {
        match self {
            ExerciseCode::Yours => None,
            ExerciseCode::Starting => Some(Variant::Buggy),
            ExerciseCode::Reference => Some(Variant::Fixed),
        }
    }
}

/// A program that runs one scenario's exercise.
pub struct ExerciseProgram {
    command: Command,
}

impl ExerciseProgram {
    /// The program for scenario `id`: its exercise binary, built now from
    /// the learner's file — or, with a stand-in `code`, this very binary.
    pub async fn prepare(id: &str, code: ExerciseCode) -> anyhow::Result<ExerciseProgram> {
        let command = match code.stand_in() {
            Some(variant) => {
                let mut command =
                    Command::new(std::env::current_exe().context("cannot find debuglab itself")?);
                command.args(["__exercise", id, "--as", variant.id()]);
                command
            }
            None => Command::new(build(id).await?),
        };
        Ok(ExerciseProgram { command })
    }

    /// `run`: one run, its report and what `keep` left, read from the program's JSON.
    pub async fn run(mut self, seed: Option<u64>, keep: bool) -> anyhow::Result<RunOutput> {
        self.command.arg("run");
        if let Some(seed) = seed {
            self.command.arg("--seed").arg(seed.to_string());
        }
        if keep {
            self.command.arg("--keep");
        }
        let mut command = tokio::process::Command::from(self.command);
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let output = command
            .output()
            .await
            .context("cannot start the exercise's program")?;
        if !output.status.success() {
            // The program said why on stderr, in one line, already.
            let code = output.status.code().unwrap_or(1).clamp(1, 255) as u8;
            return Err(AlreadyReported(code).into());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("");
        serde_json::from_str(last).context("the exercise's program printed no report")
    }

    /// `live`: the program shows its own status until it ends or Ctrl-C;
    /// an interrupt of this process is passed on, so it cleans up too.
    pub async fn live(mut self, seed: Option<u64>) -> anyhow::Result<ExitCode> {
        self.command.arg("live");
        if let Some(seed) = seed {
            self.command.arg("--seed").arg(seed.to_string());
        }
        let mut child = tokio::process::Command::from(self.command)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the exercise's program")?;
        let status = tokio::select! {
            status = child.wait() => status?,
            _ = tokio::signal::ctrl_c() => {
                if let Some(pid) = child.id() {
                    // SAFETY: signalling our own child process.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
                let _ = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait()).await;
                return Ok(ExitCode::from(130));
            }
        };
        Ok(ExitCode::from(
            status.code().unwrap_or(1).clamp(0, 255) as u8
        ))
    }
}

/// The exercise's program failed and said why on stderr itself: the CLI
/// exits with its code and adds nothing (one line per mistake, not two).
#[derive(Debug)]
pub struct AlreadyReported(pub u8);

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the exercise's program failed (exit code {})", self.0)
    }
}

impl std::error::Error for AlreadyReported {}

/// One line of `cargo build --message-format=json-diagnostic-rendered-ansi`.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    message: Option<Diagnostic>,
}

#[derive(Deserialize)]
struct CargoTarget {
    name: String,
}

#[derive(Deserialize)]
struct Diagnostic {
    level: String,
    #[serde(default)]
    rendered: Option<String>,
}

/// Builds scenario `id`'s exercise program with cargo and returns its path;
/// a compile error is the compiler's own message, framed.
async fn build(id: &str) -> anyhow::Result<PathBuf> {
    let root = state::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let bin = format!("{id}-exercise");
    let color = debuglab_harness::terminal::stderr_color();
    let format = if color {
        "--message-format=json-diagnostic-rendered-ansi"
    } else {
        "--message-format=json"
    };
    let output = Command::new(&cargo)
        .args([
            "build",
            "-p",
            id,
            "--features",
            "exercise",
            "--bin",
            &bin,
            format,
        ])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "cannot run cargo in {} (is Rust installed?)",
                root.display()
            )
        })?;
    let messages: Vec<CargoMessage> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    if !output.status.success() {
        eprint!("{}", compile_failure(id, &messages));
        bail!("your exercise does not compile yet: fix the errors above in scenarios/{id}/src/exercise.rs (`debuglab hint {id}` still works)");
    }
    messages
        .into_iter()
        .filter(|message| message.reason == "compiler-artifact")
        .filter(|message| {
            message
                .target
                .as_ref()
                .is_some_and(|target| target.name == bin)
        })
        .find_map(|message| message.executable)
        .with_context(|| format!("cargo built no {bin} program"))
}

/// What the compiler said about an exercise that does not build: its errors
/// (and warnings), as it rendered them, under one line that says what this is.
fn compile_failure(id: &str, messages: &[CargoMessage]) -> String {
    let rendered: Vec<&str> = messages
        .iter()
        .filter(|message| message.reason == "compiler-message")
        .filter_map(|message| message.message.as_ref())
        .filter(|diagnostic| matches!(diagnostic.level.as_str(), "error" | "warning"))
        .filter_map(|diagnostic| diagnostic.rendered.as_deref())
        .collect();
    let mut text = format!("your exercise does not compile yet (scenarios/{id}/src/exercise.rs); the compiler says:\n\n");
    for message in rendered {
        text.push_str(message);
        if !message.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_failure_shows_the_compilers_errors_under_one_line() {
        let lines = [
            r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error: expected `;`, found `}`\n --> scenarios/x/src/exercise.rs:3:5\n"}}"#,
            r#"{"reason":"compiler-message","message":{"level":"note","rendered":"note: ignore me\n"}}"#,
            r#"{"reason":"build-finished","success":false}"#,
        ];
        let messages: Vec<CargoMessage> = lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let text = compile_failure("x", &messages);
        assert!(
            text.starts_with("your exercise does not compile yet (scenarios/x/src/exercise.rs)")
        );
        assert!(
            text.contains("error: expected `;`, found `}`\n --> scenarios/x/src/exercise.rs:3:5\n")
        );
        assert!(!text.contains("ignore me"));
    }

    #[test]
    fn stand_ins_are_the_starting_copy_and_the_reference() {
        assert_eq!(ExerciseCode::Yours.stand_in(), None);
        assert_eq!(ExerciseCode::Starting.stand_in(), Some(Variant::Buggy));
        assert_eq!(ExerciseCode::Reference.stand_in(), Some(Variant::Fixed));
    }
}
