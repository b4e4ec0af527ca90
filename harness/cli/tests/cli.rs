//! The `debuglab` binary as a user meets it: output, exit codes, one-line
//! errors, and containers that go away on Ctrl-C.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn debuglab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("debuglab starts")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a failure with exactly one line on stderr that contains `needle`.
fn assert_one_line_error(output: &Output, code: i32, needle: &str) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line, got:\n{stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "stderr: {stderr}"
    );
}

#[test]
fn list_prints_every_scenario_as_json() {
    let output = debuglab(&["list", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let scenarios: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let first = &scenarios[0];
    assert_eq!(first["id"], "slow-query");
    assert_eq!(first["services"][0], "postgres");
    assert!(first["title"].is_string() && first["summary"].is_string());
}

#[test]
fn unknown_scenario_is_one_line_naming_the_known_ones() {
    let output = debuglab(&["run", "no-such-thing", "--variant", "buggy"]);
    assert_one_line_error(
        &output,
        1,
        "unknown scenario 'no-such-thing'; known scenarios: slow-query",
    );
}

#[test]
fn bad_variant_and_bad_flags_are_one_line_usage_errors() {
    let output = debuglab(&["run", "slow-query", "--variant", "broken"]);
    assert_one_line_error(&output, 2, "possible values: buggy, fixed, exercise");
    let output = debuglab(&["list", "--colour"]);
    assert_one_line_error(&output, 2, "--colour");
}

#[test]
fn compare_takes_a_known_scenario_and_buggy_or_exercise() {
    let output = debuglab(&["compare", "slow-qeury"]);
    assert_one_line_error(&output, 1, "did you mean 'slow-query'?");
    let output = debuglab(&["compare", "slow-query", "--with", "fixed"]);
    assert_one_line_error(&output, 2, "possible values: buggy, exercise");
    let output = debuglab(&["run", "slow-query", "--live", "--html"]);
    assert_one_line_error(&output, 2, "--html");
}

#[test]
fn html_without_a_path_goes_to_the_reports_directory() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["run", "cpu-hotpath", "--variant", "fixed", "--html"])
        .env("DEBUGLAB_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let page = state.path().join("reports/cpu-hotpath-fixed.html");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("HTML report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).expect("the page is where the run said");
    assert!(html.contains("<svg"), "the page has its plots");
}

#[test]
fn an_html_report_that_cannot_be_written_is_one_line() {
    let output = debuglab(&[
        "run",
        "cpu-hotpath",
        "--variant",
        "fixed",
        "--html",
        "/proc/no-such-dir/report.html",
    ]);
    assert_one_line_error(&output, 1, "cannot create the directory /proc/no-such-dir");
}

#[test]
fn docker_not_running_is_one_line_saying_what_to_do() {
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["run", "slow-query", "--variant", "buggy"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("DEBUGLAB_POSTGRES_URL")
        .output()
        .unwrap();
    assert_one_line_error(&output, 1, "start the Docker daemon");
}

#[test]
fn clean_server_without_a_server_named_is_one_line_saying_what_to_set() {
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["clean", "--server"])
        .env_remove("DEBUGLAB_POSTGRES_URL")
        .env_remove("DEBUGLAB_REDIS_URL")
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        1,
        "set DEBUGLAB_POSTGRES_URL and/or DEBUGLAB_REDIS_URL",
    );
}

#[test]
fn run_prints_the_report_as_json_and_exits_zero_whatever_the_verdict() {
    let output = debuglab(&[
        "run",
        "pool-exhaustion",
        "--variant",
        "fixed",
        "--format",
        "json",
        "--seed",
        "7",
    ]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "scenario",
        "variant",
        "healthy",
        "duration_ms",
        "metrics",
        "evidence",
    ] {
        assert!(
            report.get(key).is_some(),
            "the report has no {key}: {report}"
        );
    }
    assert_eq!(report["variant"], "fixed");
    assert_eq!(report["healthy"], true, "{report:#}");
    assert!(report["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|line| line.as_str().unwrap().contains("seed 7")));
}

/// How many containers carry `pid`'s label, as Docker lists them (through
/// bollard, like the harness: no `docker` CLI needed).
fn containers_of_pid(pid: u32) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = bollard::Docker::connect_with_defaults().expect("a Docker client");
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("debuglab.pid={pid}")],
        )]);
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        client
            .list_containers(Some(options))
            .await
            .expect("Docker lists containers")
            .len()
    })
}

#[test]
fn ctrl_c_stops_the_run_and_removes_its_containers() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["run", "slow-query", "--variant", "buggy"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the run has its container, then interrupt it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while containers_of_pid(pid) == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never started a container"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr_of(&output));
    // Removed before the process ended: no waiting.
    assert_eq!(
        containers_of_pid(pid),
        0,
        "containers outlived the interrupted run"
    );
}

#[test]
fn passwords_never_reach_the_terminal() {
    // A server named by URL that refuses: the error names it, without its password.
    let output = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["-vv", "run", "listener-leak", "--variant", "buggy"])
        .env("DEBUGLAB_REDIS_URL", "redis://:Sup3rS3cretPw@127.0.0.1:1/0")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr_of(&output)
    );
    assert!(
        !everything.contains("Sup3rS3cretPw"),
        "the password was printed:\n{everything}"
    );
    let last = everything.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("redis://:***@127.0.0.1:1/0"),
        "{everything}"
    );
}

/// Reads `child`'s stdout lines on a thread of their own (a blocking read
/// must not stop the test's clock).
fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Runs `sql` in the live run's database with the psql command it printed.
fn psql(printed: &str, sql: &str) -> String {
    let mut words: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(&words[..2], ["docker", "exec"], "{printed}");
    words.extend(["-A", "-t", "-c", sql]);
    let output = Command::new(words[0]).args(&words[1..]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_live_run_shows_the_symptom_to_psql_while_it_happens_and_ctrl_c_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["run", "pool-exhaustion", "--variant", "buggy", "--live"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = lines_of(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let next = || {
        lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the live run printed what it should in time")
    };
    // The commands come first, then a status line every second.
    let psql_command = loop {
        let line = next();
        if line.trim_start().starts_with("docker exec") && line.contains("psql") {
            break line.trim().to_owned();
        }
    };
    assert!(
        !psql_command.contains("-it "),
        "no terminal, no -it: {psql_command}"
    );
    let status = loop {
        let line = next();
        if line.starts_with("live ") {
            break line;
        }
    };
    assert!(
        status.contains("requests") && status.contains("errors"),
        "{status}"
    );
    // While it runs, the database shows connections idle in a transaction.
    let query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'";
    let mut seen = 0;
    while seen == 0 && Instant::now() < deadline {
        seen = psql(&psql_command, query).parse().unwrap();
    }
    assert!(
        seen >= 1,
        "no connection idle in transaction while the sale ran"
    );
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        containers_of_pid(pid),
        0,
        "containers outlived the live run"
    );
}
