//! One session per process, and the guarantee that its containers go away.
//!
//! testcontainers removes a container when its handle is dropped, but the
//! harness keeps one shared container per service in a `static`, and statics
//! are never dropped. So every container also carries a per-process session
//! label, and a watcher process ([`crate::watcher`], this program again in a
//! hidden mode, talking to Docker through bollard) removes everything with
//! that label:
//!
//! * at a normal exit, an `atexit` hook asks the watcher to clean up and waits
//!   for it, so the containers are gone before the process is;
//! * if the process dies any other way (panic that aborts, Ctrl-C, `kill -9`),
//!   the pipe to the watcher closes, and the watcher cleans up on its own.
//!
//! The watcher runs in its own process group, so the Ctrl-C that kills its
//! parent does not kill it too. `debuglab clean` removes what is left when even
//! the watcher could not run (the machine rebooted, Docker was restarted).

use std::io::Write;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::Service;

/// The label every container the harness starts carries.
pub const LABEL: &str = "debuglab";
/// The label that names the process (session) a container belongs to.
pub const SESSION_LABEL: &str = "debuglab.session";
/// The label that records the pid of the process that started a container.
pub const PID_LABEL: &str = "debuglab.pid";
/// The label that names the service a container runs.
pub const SERVICE_LABEL: &str = "debuglab.service";

/// How long a normal exit waits for the watcher to remove the containers.
const EXIT_CLEANUP_WAIT: Duration = Duration::from_secs(30);

/// This process's session id: ten lowercase hex digits, unique enough, and
/// safe in database names. The fixed width lets `debuglab clean --server`
/// recognise debuglab's databases by their prefix alone ([`crate::external`]).
pub fn id() -> &'static str {
    static ID: LazyLock<String> = LazyLock::new(|| {
        let random: u32 = rand::random();
        format!(
            "{:04x}{:06x}",
            std::process::id() & 0xffff,
            random & 0xff_ffff
        )
    });
    &ID
}

/// The labels a container of `service` started by this process carries.
pub fn labels(service: Service) -> [(&'static str, String); 4] {
    [
        (LABEL, "true".to_owned()),
        (SESSION_LABEL, id().to_owned()),
        (PID_LABEL, std::process::id().to_string()),
        (SERVICE_LABEL, service.id().to_owned()),
    ]
}

struct Watcher {
    child: Child,
    /// Closing this (or the process dying) tells the watcher to clean up.
    pipe: Option<ChildStdin>,
    /// Where the watcher says it has removed the containers.
    said: Option<ChildStdout>,
}

static WATCHER: Mutex<Option<Watcher>> = Mutex::new(None);

/// Starts this session's watcher ([`crate::watcher`]) if it is not running yet.
///
/// Called before the first container is created. If the watcher cannot start,
/// the harness warns and relies on the exit hook and `debuglab clean`.
pub(crate) fn ensure_watcher() {
    let mut watcher = WATCHER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if watcher.is_some() {
        return;
    }
    match crate::watcher::spawn(id()) {
        Ok(mut child) => {
            let (pipe, said) = (child.stdin.take(), child.stdout.take());
            *watcher = Some(Watcher { child, pipe, said });
            register_exit_hook();
        }
        Err(error) => tracing::warn!(
            "could not start the container watcher ({error}): containers of a run that is killed will stay until `debuglab clean`"
        ),
    }
}

/// Removes every container of this session now and waits (bounded) until it is done.
///
/// Safe to call more than once; containers started afterwards are not covered.
/// The CLI calls it before exiting and on Ctrl-C; the exit hook calls it for
/// everything else.
pub fn remove_session_containers() {
    let taken = WATCHER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    let Some(mut watcher) = taken else { return };
    if let Some(mut pipe) = watcher.pipe.take() {
        // Any line (or EOF) starts the clean-up; the write may fail if the
        // watcher is already gone, which is fine.
        let _ = pipe.write_all(b"exit\n");
    }
    // The watcher says when the containers are gone, then goes on a while
    // alone (for a container created late); without a word it has ended.
    let heard = watcher
        .said
        .take()
        .and_then(|mut said| read_line_within(&mut said, EXIT_CLEANUP_WAIT));
    match heard {
        Some(line) if line.trim() == crate::watcher::SWEPT => {}
        Some(_) => match watcher.child.wait() {
            Ok(status) if !status.success() => tracing::warn!(
                "the container watcher failed ({status}); `debuglab clean` removes what it left"
            ),
            _ => {}
        },
        None => tracing::warn!("container clean-up is taking long; it continues in the background"),
    }
}

/// A line from `pipe` (empty at its end), or `None` if none came within
/// `limit`. No thread: this runs in an exit hook.
fn read_line_within(pipe: &mut ChildStdout, limit: Duration) -> Option<String> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + limit;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut ready = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let polled =
            unsafe { libc::poll(&mut ready, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if polled == 0 || (polled < 0 && left.is_zero()) {
            return None;
        }
        if polled < 0 {
            continue; // interrupted by a signal: poll again
        }
        let mut chunk = [0u8; 64];
        match pipe.read(&mut chunk) {
            Ok(0) | Err(_) => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(read) => line.extend_from_slice(&chunk[..read]),
        }
        if line.contains(&b'\n') {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

/// Leaves this session's containers running after the process ends, for
/// investigation (`debuglab run --keep`); `debuglab clean` removes them later.
/// What the session made on servers named by URL stays too, until
/// `debuglab clean --server`.
pub fn keep_containers() {
    lock(&EXIT_CLEANUPS).clear();
    let taken = WATCHER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    let Some(mut watcher) = taken else { return };
    if let Some(mut pipe) = watcher.pipe.take() {
        let _ = pipe.write_all(b"keep\n");
    }
    let _ = watcher.child.wait();
}

/// Clean-ups that must run before the process ends, however it ends short
/// of being killed: what a session made on servers it did not start.
static EXIT_CLEANUPS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `cleanup` once when the process ends: at [`end`] (the CLI's exit and
/// Ctrl-C) or from the exit hook (a test program's end, a panic that leaves
/// `main`).
pub(crate) fn on_exit(cleanup: fn()) {
    lock(&EXIT_CLEANUPS).push(cleanup);
    register_exit_hook();
}

/// Everything this session leaves behind goes now: what it made on servers
/// named by URL, then its containers. Safe to call more than once.
pub fn end() {
    let cleanups = std::mem::take(&mut *lock(&EXIT_CLEANUPS));
    for cleanup in cleanups {
        cleanup();
    }
    remove_session_containers();
}

fn register_exit_hook() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        end();
    }
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` only records a function pointer; `at_exit` is an
        // `extern "C"` function that never unwinds across the boundary.
        unsafe {
            libc::atexit(at_exit);
        }
    });
}
