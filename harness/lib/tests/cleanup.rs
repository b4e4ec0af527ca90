//! Containers go away with the process that started them, however it ends.
//!
//! Each test re-runs this test binary as a child that starts the shared Redis
//! container (kept in a `static`, so never dropped) and reports its session id;
//! the parent then ends the child and watches Docker, through bollard as the
//! harness does (no `docker` CLI needed here either).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, WaitContainerOptionsBuilder};
use debuglab_harness::session;
use futures::StreamExt;

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

/// Starts the child; with `path`, its `PATH` is that instead of ours.
fn start_child(mode: &str, path: Option<&str>) -> (Child, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let mut child = command
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a runtime for the checks")
}

/// Ids of the containers that carry `session_id`'s label.
async fn containers_of(session_id: &str) -> Vec<String> {
    let client = debuglab_harness::docker::connect()
        .await
        .expect("Docker answers");
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={session_id}", session::SESSION_LABEL)],
    )]);
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = client
        .list_containers(Some(options))
        .await
        .expect("Docker lists containers");
    containers.into_iter().filter_map(|c| c.id).collect()
}

/// Waits (at most 30 s) until Docker says each container was removed; then
/// the session must have none left.
async fn wait_until_removed(session_id: &str, ids: &[String]) {
    let client = debuglab_harness::docker::connect()
        .await
        .expect("Docker answers");
    for id in ids {
        let options = WaitContainerOptionsBuilder::new()
            .condition("removed")
            .build();
        let mut waiting = client.wait_container(id, Some(options));
        // The stream ends, with the exit status or with "no such container"
        // when it is gone already; the listing below is what is asserted.
        let waited = tokio::time::timeout(Duration::from_secs(30), waiting.next()).await;
        assert!(
            waited.is_ok(),
            "session {session_id}'s container {id:.12} outlived its killed process by 30 s"
        );
    }
    assert_eq!(
        containers_of(session_id).await,
        Vec::<String>::new(),
        "session {session_id} left containers behind"
    );
}

#[test]
fn normal_exit_removes_the_shared_container_before_the_process_ends() {
    let (mut child, session_id) = start_child("exit", None);
    assert!(child.wait().unwrap().success());
    // No waiting: the exit hook removed the container before the child ended.
    assert_eq!(
        runtime().block_on(containers_of(&session_id)),
        Vec::<String>::new(),
        "session {session_id} left containers behind"
    );
}

/// SIGKILL: no exit hook, no destructor runs; only the watcher is left.
fn kill_and_expect_removal(path: Option<&str>) {
    let (mut child, session_id) = start_child("hang", path);
    let runtime = runtime();
    let ids = runtime.block_on(containers_of(&session_id));
    assert_eq!(ids.len(), 1, "the child's container should be running");
    child.kill().unwrap();
    child.wait().unwrap();
    runtime.block_on(wait_until_removed(&session_id, &ids));
}

#[test]
fn killed_process_has_its_container_removed_by_the_watcher() {
    kill_and_expect_removal(None);
}

#[test]
fn killed_process_has_its_container_removed_without_a_docker_cli() {
    // An empty directory as the whole PATH: no `docker`, no `sh`.
    let empty = std::env::temp_dir().join(format!("debuglab-no-docker-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    kill_and_expect_removal(Some(empty.to_str().unwrap()));
    let _ = std::fs::remove_dir(&empty);
}

/// A container whose creation was still in flight when its session ended
/// (Ctrl-C during start-up, a busy Docker) appears after the first sweep:
/// the watcher, following Docker's events, removes it too.
#[test]
fn a_container_created_after_its_session_ended_is_removed_too() {
    let (mut child, session_id) = start_child("exit", None);
    let runtime = runtime();
    let image = runtime.block_on(async {
        let client = debuglab_harness::docker::connect()
            .await
            .expect("Docker answers");
        let ids = containers_of(&session_id).await;
        let container = client
            .inspect_container(&ids[0], None)
            .await
            .expect("the child's container");
        container
            .config
            .and_then(|config| config.image)
            .expect("it has an image")
    });
    assert!(child.wait().unwrap().success());
    // Created as a late request of the child would be: its labels, after its end.
    let late = runtime.block_on(async {
        let client = debuglab_harness::docker::connect()
            .await
            .expect("Docker answers");
        let labels = HashMap::from([
            (session::LABEL.to_owned(), "true".to_owned()),
            (session::SESSION_LABEL.to_owned(), session_id.clone()),
        ]);
        let body = bollard::models::ContainerCreateBody {
            image: Some(image),
            labels: Some(labels),
            ..Default::default()
        };
        client
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .expect("Docker creates the late container")
            .id
    });
    runtime.block_on(wait_until_removed(&session_id, &[late]));
}

#[test]
fn a_watcher_that_cannot_reach_docker_says_so_and_fails() {
    // This test program in the watcher's mode, its parent gone at once
    // (stdin is empty), with a Docker socket that does not exist.
    let output = Command::new(std::env::current_exe().unwrap())
        .env("DEBUGLAB_WATCHER_SESSION", "0000000000")
        .env("DOCKER_HOST", "unix:///nonexistent/debuglab-docker.sock")
        .stdin(Stdio::null())
        .output()
        .expect("the test binary starts as a watcher");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the watcher hid a failure: {stderr}"
    );
    assert!(
        stderr.contains("container watcher") && stderr.contains("debuglab-docker.sock"),
        "the watcher's failure is not in its log: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "the watcher ran libtest's main instead"
    );
}
