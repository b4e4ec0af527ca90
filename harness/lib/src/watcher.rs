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
//! leaves the containers, anything else removes them); end of file means the
//! parent died, so the watcher removes them all the same. Once the first
//! sweep is done it says `swept` on its stdout, so that an exiting parent
//! need not wait longer; then it follows Docker's events for a while and
//! removes any container of the session created late — one whose creation
//! request was still in flight when the session ended (a Ctrl-C during
//! start-up, on a busy machine). Failures are logged through `tracing` on the
//! stderr the watcher shares with its parent, and end the watcher with a
//! non-zero status that a normal exit reports.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{
    EventsOptions, ListContainersOptions, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::docker;
use crate::session::SESSION_LABEL;

/// Set on the watcher's environment to the session it watches.
pub(crate) const SESSION_ENV: &str = "DEBUGLAB_WATCHER_SESSION";

/// How long after its first sweep the watcher follows Docker's events for a
/// container of the session created late (its request was in flight).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

/// How often the watcher sweeps during [`IN_FLIGHT_GRACE`], in case an
/// event did not reach it.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the watcher says on its stdout once the session's containers are gone.
pub(crate) const SWEPT: &str = "swept";

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
        .stdout(Stdio::piped())
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
    runtime.block_on(clean_up(session))
}

async fn clean_up(session: &str) -> i32 {
    // A little before now, in case Docker's clock is behind this one.
    let since = unix_seconds(SystemTime::now() - Duration::from_secs(5));
    let Ok(client) = docker::connect().await.map_err(|error| {
        tracing::error!(session, "container watcher: {error}");
    }) else {
        return 1;
    };
    if remove_containers(&client, session).await.is_err() {
        return 1;
    }
    // The parent (if alive) may go now; a parent that is gone reads nothing.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{SWEPT}").and_then(|()| stdout.flush());
    i32::from(
        remove_late_arrivals(&client, session, &since)
            .await
            .is_err(),
    )
}

/// Follows Docker's events from `since` for [`IN_FLIGHT_GRACE`] and removes
/// every container of `session` created meanwhile; then sweeps once more.
///
/// Events make the removal prompt; a sweep every [`SWEEP_EVERY`] catches a
/// creation whose event a busy daemon dropped from its short replay buffer,
/// and the grace ends on this process's clock, whether or not Docker ends
/// the stream at `until`.
async fn remove_late_arrivals(
    client: &bollard::Docker,
    session: &str,
    since: &str,
) -> Result<(), ()> {
    let until = unix_seconds(SystemTime::now() + IN_FLIGHT_GRACE);
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["create".to_owned()]),
        (
            "label".to_owned(),
            vec![format!("{SESSION_LABEL}={session}")],
        ),
    ]);
    let options = EventsOptions {
        since: Some(since.to_owned()),
        until: Some(until),
        filters: Some(filters),
    };
    let mut events = client.events(Some(options));
    let mut following = true;
    let grace_ends = tokio::time::sleep(IN_FLIGHT_GRACE);
    tokio::pin!(grace_ends);
    let mut sweeps = tokio::time::interval(SWEEP_EVERY);
    let mut result = Ok(());
    loop {
        tokio::select! {
            () = &mut grace_ends => break,
            _ = sweeps.tick() => result = result.and(remove_containers(client, session).await),
            event = events.next(), if following => match event {
                Some(Ok(event)) => {
                    if let Some(id) = event.actor.and_then(|actor| actor.id) {
                        result = result.and(remove_container(client, session, &id).await);
                    }
                }
                // Docker ended the stream at `until`, or early: the sweeps go on.
                None => following = false,
                Some(Err(error)) => {
                    following = false;
                    tracing::error!(
                        session,
                        "container watcher: Docker's events: {}",
                        docker::short_error(&error)
                    );
                    result = Err(());
                }
            },
        }
    }
    result.and(remove_containers(client, session).await)
}

/// `time` as Docker's API takes it: seconds since the epoch, with a fraction.
fn unix_seconds(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

/// Removes every container labelled with `session`, through `client`;
/// each failure is logged.
async fn remove_containers(client: &bollard::Docker, session: &str) -> Result<(), ()> {
    let fail = |what: &str, detail: String| {
        tracing::error!(session, "container watcher: {what}: {detail}");
    };
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
    let mut result = Ok(());
    for id in containers.into_iter().filter_map(|container| container.id) {
        result = result.and(remove_container(client, session, &id).await);
    }
    result
}

/// Removes container `id` of `session`, its volumes too; a failure is logged.
async fn remove_container(client: &bollard::Docker, session: &str, id: &str) -> Result<(), ()> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match client.remove_container(id, Some(options)).await {
        // Gone already (the exit hook or `debuglab clean` got there first).
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(error) => {
            tracing::error!(
                session,
                "container watcher: cannot remove {id:.12}: {}",
                docker::short_error(&error)
            );
            Err(())
        }
    }
}
