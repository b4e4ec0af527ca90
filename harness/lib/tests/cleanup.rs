//! Containers go away with the process that started them, however it ends.
//!
//! Each test re-runs this test binary as a child that starts the shared Redis
//! container (kept in a `static`, so never dropped) and reports its session id;
//! the parent then ends the child and watches Docker.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use debuglab_harness::session;

const CHILD_MODE: &str = "DEBUGLAB_TEST_CHILD_MODE";

/// The child's side: start Redis, print the session id, then exit or hang.
#[test]
#[ignore = "run by the other tests in this file as a child process"]
fn child_starts_a_container() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        debuglab_harness::redis::server()
            .await
            .expect("Redis starts");
    });
    println!("SESSION {}", session::id());
    if mode == "hang" {
        loop {
            std::thread::park();
        }
    }
}

fn start_child(mode: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_starts_a_container",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env_remove("DEBUGLAB_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary starts again");
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let session = lines
        // libtest prints "test child_starts_a_container ... " first, on the same line.
        .find_map(|line| {
            line.split_once("SESSION ")
                .map(|(_, id)| id.trim().to_owned())
        })
        .expect("the child reports its session");
    // Keep reading, so that the child's last words do not hit a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, session)
}

fn containers_of(session_id: &str) -> usize {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={}={session_id}", session::SESSION_LABEL))
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[test]
fn normal_exit_removes_the_shared_container_before_the_process_ends() {
    let (mut child, session_id) = start_child("exit");
    assert!(child.wait().unwrap().success());
    // No waiting: the exit hook removed the container before the child ended.
    assert_eq!(
        containers_of(&session_id),
        0,
        "session {session_id} left containers behind"
    );
}

#[test]
fn killed_process_has_its_container_removed_by_the_watcher() {
    let (mut child, session_id) = start_child("hang");
    assert_eq!(
        containers_of(&session_id),
        1,
        "the child's container should be running"
    );
    child.kill().unwrap(); // SIGKILL: no exit hook, no destructor runs.
    child.wait().unwrap();
    // The watcher notices the closed pipe at once; docker rm takes a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(&session_id) > 0 {
        assert!(
            Instant::now() < deadline,
            "session {session_id}'s container outlived its killed process by 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
