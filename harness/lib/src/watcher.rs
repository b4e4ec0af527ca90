//! The watcher: a second copy of the current program that removes a
//! session's containers, through bollard, when the session's process ends.
//!
//! Why a copy of the current program: the watcher must outlive a `kill -9` of
//! its parent, so it is a process of its own, and it must talk to Docker with
//! the same client as the rest of the harness (no `docker` CLI, which may not
//! be installed). Every program that starts containers links this library —
//! the `debuglab` CLI, exercise programs, scenario test programs whose `main`
//! belongs to libtest — so the harness re-executes `/proc/self/exe` with
//! [`SESSION_ENV`] set. A load-time constructor ([`WATCH_MODE_AT_LOAD`]) sees
//! the variable before `main` (ours or libtest's) runs, acts as the watcher and
//! exits; no program has to call anything at start.
//!
//! The protocol on the watcher's stdin: a line means a normal exit (`keep`
//! leaves the containers, anything else removes them once); end of file means
//! the parent died, so the watcher removes them, then once more a second later
//! for a container whose creation was in flight. Failures are logged through
//! `tracing` on the stderr the watcher shares with its parent, and end the
//! watcher with a non-zero status that a normal exit reports.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptionsBuilder};

use crate::docker;
use crate::session::SESSION_LABEL;

/// Set on the watcher's environment to the session it watches.
pub(crate) const SESSION_ENV: &str = "DEBUGLAB_WATCHER_SESSION";

/// How long after its parent died the watcher looks again, for a container
/// whose creation request was still in flight when the parent was killed.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(1);

/// Starts the watcher of `session`: this program again, in watcher mode, in
/// its own process group so that the Ctrl-C that ends its parent spares it.
pub(crate) fn spawn(session: &str) -> std::io::Result<Child> {
    // Only a watcher whose load-time hook did not run has this set: it must
    // not start watchers of its own, each one another copy of the program.
    if std::env::var_os(SESSION_ENV).is_some() {
        return Err(std::io::Error::other(
            "this program did not enter the watcher's mode at load time",
        ));
    }
    // `/proc/self/exe` still works when the file was replaced or deleted
    // (cargo rebuilt the program while it ran); `current_exe` does not.
    let program = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut command = Command::new(program);
    command
        .env(SESSION_ENV, session)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    // Keeps the constructor's object in every program that starts a watcher.
    std::hint::black_box(&WATCH_MODE_AT_LOAD);
    command.spawn()
}

/// Runs before `main`: turns this process into the watcher when asked to.
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
#[cfg_attr(target_os = "macos", link_section = "__DATA,__mod_init_func")]
static WATCH_MODE_AT_LOAD: extern "C" fn() = watch_mode_at_load;

extern "C" fn watch_mode_at_load() {
    let Some(session) = std::env::var_os(SESSION_ENV) else {
        return;
    };
    // Nothing may unwind out of a constructor; a panic counts as a failure.
    let code = std::panic::catch_unwind(|| watch(&session.to_string_lossy())).unwrap_or(3);
    std::process::exit(code);
}

/// The watcher's life: wait for the parent's word or death, then clean up.
fn watch(session: &str) -> i32 {
    // The terminal's hang-up and a parent's closed stderr must not kill the
    // watcher before it has removed anything.
    // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let mut line = String::new();
    let parent_died = match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => true,
        Ok(_) => false,
    };
    if !parent_died && line.trim() == "keep" {
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(session, "container watcher: no runtime: {error}");
            return 1;
        }
    };
    runtime.block_on(clean_up(session, parent_died))
}

async fn clean_up(session: &str, parent_died: bool) -> i32 {
    let mut failed = remove_containers(session).await.is_err();
    if parent_died {
        tokio::time::sleep(IN_FLIGHT_GRACE).await;
        failed |= remove_containers(session).await.is_err();
    }
    i32::from(failed)
}

/// Removes every container labelled with `session`; each failure is logged.
pub(crate) async fn remove_containers(session: &str) -> Result<usize, ()> {
    let fail = |what: &str, detail: String| {
        tracing::error!(session, "container watcher: {what}: {detail}");
    };
    let client = docker::connect().await.map_err(|error| {
        tracing::error!(session, "container watcher: {error}");
    })?;
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{SESSION_LABEL}={session}")],
    )]);
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = client
        .list_containers(Some(options))
        .await
        .map_err(|error| fail("cannot list containers", docker::short_error(&error)))?;
    let mut result = Ok(0);
    for id in containers.into_iter().filter_map(|container| container.id) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match client.remove_container(&id, Some(options)).await {
            Ok(()) => result = result.map(|removed| removed + 1),
            // Gone already (the exit hook or `debuglab clean` got there first).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(error) => {
                fail(
                    &format!("cannot remove {id:.12}"),
                    docker::short_error(&error),
                );
                result = Err(());
            }
        }
    }
    result
}
