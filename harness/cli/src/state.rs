//! The learner's progress, kept in a small JSON file in the repository's
//! ignored `.debuglab/` directory (never in source files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Where the repository is: `DEBUGLAB_ROOT`; or the debuglab checkout
/// around the current directory (so `debuglab` works from any directory
/// inside it); or the checkout this binary was built from.
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("DEBUGLAB_ROOT") {
        return PathBuf::from(root);
    }
    std::env::current_dir()
        .ok()
        .and_then(|dir| {
            dir.ancestors()
                .find(|dir| is_checkout(dir))
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Whether `dir` is the top of a debuglab checkout.
fn is_checkout(dir: &Path) -> bool {
    dir.join("harness/cli/Cargo.toml").is_file() && dir.join("scenarios").is_dir()
}

/// How the learner types a debuglab command: `debuglab run x` once it is
/// installed on the PATH (`make install`), `cargo run -q -p debuglab -- run x`
/// until then.
pub fn command(args: &str) -> String {
    if installed_on_path() {
        format!("debuglab {args}")
    } else {
        format!("cargo run -q -p debuglab -- {args}")
    }
}

fn installed_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("debuglab").is_file()))
}

/// Where state and backups live: `DEBUGLAB_STATE_DIR`, or `<repo>/.debuglab`.
pub fn state_dir() -> PathBuf {
    match std::env::var_os("DEBUGLAB_STATE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join(".debuglab"),
    }
}

/// The learner's copy of scenario `id`'s code.
pub fn exercise_path(id: &str) -> PathBuf {
    repo_root()
        .join("scenarios")
        .join(id)
        .join("src/exercise.rs")
}

/// The code the exercise starts as (the buggy variant).
pub fn starting_copy_path(id: &str) -> PathBuf {
    repo_root().join("scenarios").join(id).join("src/buggy.rs")
}

/// Where a learner stands with one scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScenarioProgress {
    /// The exercise was run and showed the symptom.
    #[serde(default)]
    pub symptom_seen: bool,
    /// The exercise passed its check the last time it was checked.
    #[serde(default)]
    pub fixed: bool,
    /// How many hints were shown (0 to 3).
    #[serde(default)]
    pub hints_shown: usize,
    /// The solution was shown.
    #[serde(default)]
    pub solution_seen: bool,
}

/// A scenario's status as `list` and `progress` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing done yet.
    NotStarted,
    /// The symptom was seen; not fixed yet.
    SymptomSeen,
    /// The exercise passes its check.
    Fixed,
}

impl Status {
    /// As shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::NotStarted => "not started",
            Status::SymptomSeen => "symptom seen",
            Status::Fixed => "fixed",
        }
    }
}

impl ScenarioProgress {
    /// The status this progress amounts to.
    pub fn status(&self) -> Status {
        if self.fixed {
            Status::Fixed
        } else if self.symptom_seen || self.hints_shown > 0 {
            Status::SymptomSeen
        } else {
            Status::NotStarted
        }
    }
}

/// Every scenario's progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// By scenario id.
    #[serde(default)]
    pub scenarios: BTreeMap<String, ScenarioProgress>,
}

impl State {
    fn path() -> PathBuf {
        state_dir().join("state.json")
    }

    /// Reads the state; a missing file is a fresh start.
    pub fn load() -> anyhow::Result<State> {
        let path = State::path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid progress; delete it to start over",
                    path.display()
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the state (atomically: a crash never leaves half a file).
    pub fn save(&self) -> anyhow::Result<()> {
        let path = State::path();
        let dir = path.parent().expect("the state file has a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// One scenario's progress (default if none yet).
    pub fn of(&self, id: &str) -> ScenarioProgress {
        self.scenarios.get(id).cloned().unwrap_or_default()
    }

    /// Changes one scenario's progress and saves.
    pub fn update(
        id: &str,
        change: impl FnOnce(&mut ScenarioProgress),
    ) -> anyhow::Result<ScenarioProgress> {
        let mut state = State::load()?;
        let progress = state.scenarios.entry(id.to_owned()).or_default();
        change(progress);
        let updated = progress.clone();
        state.save()?;
        Ok(updated)
    }
}
