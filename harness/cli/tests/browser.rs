//! The comparison page of a real run, as a browser shows it: headless
//! Chromium opens it, the page loads with no console error, every plot has
//! a drawn area, and the screenshot is not blank. The screenshot is kept in
//! the target directory, to look at after a failure (`make pictures` makes
//! the book's pictures the same way).
//!
//! Skipped, with one line saying so, when no Chromium is installed (`make
//! test` and CI install Debian's `chromium` when they can).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long one browser invocation may take.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Width of the browser's window, in CSS pixels (one device pixel each).
const WIDTH: u32 = 1400;

/// Recorded by the page itself before anything else runs: errors and
/// console warnings, and where each plot ended up.
const PROBE: &str = r#"<script>
(function () {
  var problems = [];
  window.addEventListener('error', function (event) {
    var target = event.target || {};
    problems.push('error: ' + (event.message || target.src || target.href || 'a resource failed'));
  }, true);
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      problems.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
      original.apply(console, arguments);
    };
  });
  window.addEventListener('load', function () {
    var boxes = Array.prototype.map.call(document.querySelectorAll('figure.plot'), function (figure) {
      var svg = figure.querySelector('svg');
      var box = svg ? svg.getBoundingClientRect() : { left: 0, top: 0, width: 0, height: 0 };
      return [box.left + window.scrollX, box.top + window.scrollY, box.width, box.height].map(Math.round).join(',');
    });
    document.body.setAttribute('data-probe-problems', JSON.stringify(problems));
    document.body.setAttribute('data-probe-boxes', boxes.join(';'));
    document.body.setAttribute('data-probe-height', String(document.documentElement.scrollHeight));
  });
})();
</script>"#;

/// The browser: `DEBUGLAB_CHROMIUM`, or the first Chromium on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DEBUGLAB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

/// Runs `command`, killing it if it takes longer than `limit`.
fn bounded(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) on a child this test started and has not reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut stdout)
        .expect("stdout reads");
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_end(&mut stderr)
        .expect("stderr reads");
    let status = child.wait().expect("the program ends");
    let _ = done.send(());
    watchdog.join().expect("the watchdog ends");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Chromium, headless, with a profile of its own in `dir`, showing `page`.
fn browser(program: &Path, dir: &Path, height: u32, page: &Path, extra: &[&str]) -> Output {
    let mut command = Command::new(program);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args([
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size={WIDTH},{height}"))
        .args(extra)
        .arg(format!("file://{}", page.display()));
    bounded(command, BROWSER_LIMIT)
}

/// The value of `data-probe-<name>` on the dumped page's body.
fn probe_value<'a>(dom: &'a str, name: &str) -> &'a str {
    let marker = format!("data-probe-{name}=\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("the probe did not record {name}:\n{dom}"))
        + marker.len();
    let end = dom[start..].find('"').expect("the attribute ends") + start;
    &dom[start..end]
}

/// A decoded screenshot, 8 bits a sample.
struct Screenshot {
    width: usize,
    height: usize,
    /// Samples per pixel: 3 (RGB) or 4 (RGBA).
    channels: usize,
    pixels: Vec<u8>,
}

impl Screenshot {
    fn read(path: &Path) -> Screenshot {
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(path).expect("the screenshot exists"),
        ));
        let mut reader = decoder.read_info().expect("the screenshot is a PNG");
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer).expect("the PNG decodes");
        assert_eq!(
            info.bit_depth,
            png::BitDepth::Eight,
            "Chromium writes 8-bit samples"
        );
        let channels = info.color_type.samples();
        assert!(channels >= 3, "a colour screenshot: {:?}", info.color_type);
        buffer.truncate(info.buffer_size());
        Screenshot {
            width: info.width as usize,
            height: info.height as usize,
            channels,
            pixels: buffer,
        }
    }

    /// The share of pixels in the box that are ink: clearly darker than the
    /// white and light greys of paper and panels.
    fn ink(&self, left: usize, top: usize, width: usize, height: usize) -> f64 {
        self.share(left, top, width, height, |pixel| {
            pixel.iter().min().copied().unwrap_or(255) < 200
        })
    }

    /// The share of pixels in the box in colour: the series drawn, not the
    /// black and grey of axes and labels.
    fn colour(&self, left: usize, top: usize, width: usize, height: usize) -> f64 {
        self.share(left, top, width, height, |pixel| {
            let (low, high) = (
                pixel.iter().min().copied().unwrap_or(0),
                pixel.iter().max().copied().unwrap_or(0),
            );
            high - low > 40
        })
    }

    fn share(
        &self,
        left: usize,
        top: usize,
        width: usize,
        height: usize,
        counts: impl Fn(&[u8]) -> bool,
    ) -> f64 {
        let (right, bottom) = (
            (left + width).min(self.width),
            (top + height).min(self.height),
        );
        let mut inked = 0usize;
        let mut total = 0usize;
        for y in top..bottom {
            for x in left..right {
                let at = (y * self.width + x) * self.channels;
                let pixel = &self.pixels[at..at + 3];
                inked += usize::from(counts(pixel));
                total += 1;
            }
        }
        inked as f64 / total.max(1) as f64
    }
}

/// Where the page laid out its plots, and how tall it is, as the page itself
/// measured them in the browser; asserts it loaded with no error.
struct Layout {
    /// Each plot's `[left, top, width, height]`, in CSS pixels.
    boxes: Vec<Vec<usize>>,
    height: u32,
}

impl Layout {
    fn probe(program: &Path, dir: &Path, html: &str) -> Layout {
        let probed = dir.join("probed.html");
        std::fs::write(
            &probed,
            html.replacen("<head>", &format!("<head>{PROBE}"), 1),
        )
        .expect("the probed copy is written");
        let dumped = browser(
            program,
            dir,
            900,
            &probed,
            &["--dump-dom", "--virtual-time-budget=5000"],
        );
        let dom = String::from_utf8_lossy(&dumped.stdout);
        assert!(
            dumped.status.success() && dom.contains("Pool exhaustion"),
            "the page did not load: {}",
            String::from_utf8_lossy(&dumped.stderr)
        );
        assert_eq!(
            probe_value(&dom, "problems"),
            "[]",
            "the page logged errors"
        );
        let boxes = probe_value(&dom, "boxes")
            .split(';')
            .map(|text| {
                text.split(',')
                    .map(|n| n.parse().expect("a whole number"))
                    .collect()
            })
            .collect();
        let height = probe_value(&dom, "height").parse().expect("a height");
        Layout { boxes, height }
    }
}

/// `debuglab compare pool-exhaustion`, its page written to `page`.
fn compare_into(page: &Path, state: &Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["compare", "pool-exhaustion", "--seed", "7", "--html"])
        .arg(page)
        .env("DEBUGLAB_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .output()
        .expect("debuglab starts");
    assert!(
        run.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(page).expect("the page was written")
}

/// Asserts that each plot's box in the screenshot has room, ink, and a series in colour.
fn assert_every_plot_drawn(image: &Screenshot, boxes: &[Vec<usize>]) {
    for (index, plot) in boxes.iter().enumerate() {
        let [left, top, width, height] = plot[..] else {
            panic!("a box has four numbers: {plot:?}")
        };
        assert!(
            width > 200 && height > 100,
            "plot {index} has no room: {plot:?}"
        );
        let ink = image.ink(left, top, width, height);
        assert!(
            ink > 0.02,
            "plot {index} at {plot:?} is blank ({:.1}% ink)",
            ink * 100.0
        );
        // A legend alone colours about 0.06% a series; data colours more.
        let colour = image.colour(left, top, width, height);
        assert!(
            colour > 0.0015,
            "plot {index} at {plot:?} draws no series ({:.2}% in colour)",
            colour * 100.0
        );
    }
}

#[test]
fn the_comparison_page_renders_in_a_browser_with_every_plot_drawn() {
    let Some(program) = chromium() else {
        eprintln!("skipped: no Chromium found (install Debian's `chromium` package, or set DEBUGLAB_CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().expect("a scratch directory");
    let page = dir.path().join("pool-exhaustion-compare.html");
    let html = compare_into(&page, &dir.path().join("state"));
    let layout = Layout::probe(&program, dir.path(), &html);
    assert_eq!(
        layout.boxes.len(),
        html.matches("data-plot=\"").count(),
        "every figure has a box"
    );
    assert!(
        layout.boxes.len() >= 8,
        "both runs' plots, four each: {:?}",
        layout.boxes
    );

    let screenshot = dir.path().join("page.png");
    let shot = browser(
        &program,
        dir.path(),
        layout.height,
        &page,
        &[&format!("--screenshot={}", screenshot.display())],
    );
    assert!(
        shot.status.success(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let image = Screenshot::read(&screenshot);
    assert!(
        image.ink(0, 0, image.width, image.height) > 0.01,
        "the screenshot is blank"
    );
    assert_every_plot_drawn(&image, &layout.boxes);
    // Kept to look at after a failure.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pool-exhaustion-compare.png");
    std::fs::copy(&screenshot, &kept).expect("the screenshot is kept");
}
