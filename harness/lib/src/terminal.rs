//! What debuglab's programs draw on the terminal: colours, spinners, and
//! redacted logs — the same for the CLI and for an exercise's own binary.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::progress::{ActiveStep, ProgressSink};
use indicatif::{ProgressBar, ProgressStyle};

/// Whether stdout gets ANSI colours: as anstream decides, honouring
/// `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, `TERM=dumb` and non-terminals.
pub fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Whether stderr gets ANSI colours, decided as for [`stdout_color`].
pub fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// `text` in `style` when `color`, plain otherwise.
pub fn paint(color: bool, style: anstyle::Style, text: &str) -> String {
    if color {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_owned()
    }
}

/// The styles debuglab's text uses.
pub mod styles {
    use anstyle::{AnsiColor, Style};

    /// Headings and names.
    pub const STRONG: Style = Style::new().bold();
    /// What is as it should be: a healthy verdict, a line added by the fix.
    pub const GOOD: Style = AnsiColor::Green.on_default().bold();
    /// What is wrong: an unhealthy verdict, a line the fix removes.
    pub const BAD: Style = AnsiColor::Red.on_default().bold();
    /// What did not go as expected.
    pub const SURPRISE: Style = AnsiColor::Yellow.on_default().bold();
    /// Pictures in text: sparklines.
    pub const PICTURE: Style = AnsiColor::Cyan.on_default();
    /// A line the fix adds, in a diff.
    pub const ADDED: Style = AnsiColor::Green.on_default();
    /// A line the fix removes, in a diff.
    pub const REMOVED: Style = AnsiColor::Red.on_default();
}

/// Whether stdout is a terminal (a person reads it, rather than a program).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Draws a spinner on stderr for each slow step of a run (only on a terminal).
pub struct Spinners;

impl Spinners {
    /// Installs the spinners as the harness's progress display if stderr is a terminal.
    pub fn install_if_terminal() {
        if std::io::stderr().is_terminal() {
            crate::progress::install(Spinners);
        }
    }
}

impl ProgressSink for Spinners {
    fn begin(&self, label: &str) -> Box<dyn ActiveStep> {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        Box::new(Spinner {
            bar,
            label: label.to_owned(),
        })
    }
}

struct Spinner {
    bar: ProgressBar,
    label: String,
}

impl ActiveStep for Spinner {
    fn finish(self: Box<Self>, elapsed: Duration) {
        // Quick steps vanish; slow ones stay as a line, so the user sees where time went.
        self.bar.finish_and_clear();
        if elapsed >= Duration::from_secs(1) {
            eprintln!("  {} ({:.1} s)", self.label, elapsed.as_secs_f64());
        }
    }
}

/// Sets up `tracing` on stderr: warnings by default, more with `-v`, or as
/// `RUST_LOG` says. Every line passes through the redactor first.
pub fn init_logging(verbosity: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbosity {
        0 => "warn,sqlx=error",
        1 => "info,sqlx=warn",
        _ => "debug,sqlx=info,bollard=info,hyper=info,h2=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingWriter(Vec::new()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init()
        .ok();
}

/// Collects one log event and writes it to stderr with secrets masked.
struct RedactingWriter(Vec<u8>);

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(crate::redact::redact(&text).as_bytes());
    }
}
