//! A server debuglab did not start ends as it began: after a run, after a
//! panicking process, after Ctrl-C, and after `kill -9` followed by
//! `debuglab clean --server`.
//!
//! Each test starts its own plain PostgreSQL and Redis containers (labelled
//! `debuglab`, removed by a drop guard even when the test fails), standing in
//! for an instructor's shared servers, puts some data of "the instructor's"
//! on them, and compares what the servers hold before and after. It talks
//! to the containers through testcontainers (bollard), not the docker CLI.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testcontainers::core::{ExecCommand, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const CHILD_MODE: &str = "DEBUGLAB_TEST_CHILD_MODE";
const PASSWORD: &str = "Ext3rnalTestPw";

/// The stand-in servers; dropping them removes both containers.
struct Servers {
    runtime: tokio::runtime::Runtime,
    postgres: Option<ContainerAsync<GenericImage>>,
    redis: Option<ContainerAsync<GenericImage>>,
    postgres_url: String,
    redis_url: String,
}

impl Drop for Servers {
    fn drop(&mut self) {
        let (postgres, redis) = (self.postgres.take(), self.redis.take());
        self.runtime.block_on(async {
            for container in [postgres, redis].into_iter().flatten() {
                let _ = container.rm().await;
            }
        });
    }
}

impl Servers {
    fn start() -> Servers {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (postgres, redis) = runtime.block_on(async {
            let postgres = GenericImage::new("debuglab/postgres", "15-bookworm")
                .with_exposed_port(5432.tcp())
                .with_wait_for(WaitFor::message_on_stderr(
                    "database system is ready to accept connections",
                ))
                .with_cmd([
                    "postgres",
                    "-c",
                    "shared_preload_libraries=pg_stat_statements",
                    // For the test's speed only (seeding a million rows on
                    // this busy machine's disk takes a minute); nothing
                    // debuglab relies on. No logging collector, as on a
                    // server whose log debuglab cannot read.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ])
                .with_mount(Mount::tmpfs_mount("/var/lib/postgresql/data").with_mode(0o1777))
                .with_env_var("POSTGRES_PASSWORD", PASSWORD)
                .with_label("debuglab", "true")
                .with_label("debuglab.test", "external-server")
                // `debuglab clean` leaves containers of a live process alone.
                .with_label("debuglab.pid", std::process::id().to_string());
            let redis = GenericImage::new("debuglab/redis", "7-bookworm")
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
                .with_cmd(["redis-server", "--requirepass", PASSWORD, "--save", ""])
                .with_env_var("REDISCLI_AUTH", PASSWORD)
                .with_label("debuglab", "true")
                .with_label("debuglab.test", "external-server")
                // `debuglab clean` leaves containers of a live process alone.
                .with_label("debuglab.pid", std::process::id().to_string());
            let (postgres, redis) = tokio::join!(postgres.start(), redis.start());
            (
                postgres.expect("PostgreSQL starts"),
                redis.expect("Redis starts"),
            )
        });
        let (pg_port, redis_port) = runtime.block_on(async {
            (
                postgres.get_host_port_ipv4(5432).await.unwrap(),
                redis.get_host_port_ipv4(6379).await.unwrap(),
            )
        });
        let servers = Servers {
            postgres_url: format!("postgres://postgres:{PASSWORD}@127.0.0.1:{pg_port}/postgres"),
            redis_url: format!("redis://:{PASSWORD}@127.0.0.1:{redis_port}"),
            runtime,
            postgres: Some(postgres),
            redis: Some(redis),
        };
        // The instructor's own data, which debuglab must never touch; one
        // database's name is close to what older debuglab versions left.
        servers.psql("CREATE DATABASE classroom");
        servers.psql("CREATE DATABASE debuglab_tpl_notes");
        servers.redis_cli(0, &["SET", "instructor:note", "hello"]);
        servers.redis_cli(1, &["SET", "class:roster", "30"]);
        servers
    }

    /// Runs `args` in `container` (an exec through Docker's API) and returns
    /// its stdout; panics with its stderr if it fails.
    fn exec(&self, container: &Option<ContainerAsync<GenericImage>>, args: &[&str]) -> String {
        let container = container.as_ref().unwrap();
        self.runtime.block_on(async {
            let mut exec = container
                .exec(ExecCommand::new(args.iter().copied()))
                .await
                .expect("docker exec starts");
            let stdout = exec.stdout_to_vec().await.expect("the exec's stdout");
            let stderr = exec.stderr_to_vec().await.expect("the exec's stderr");
            // The output ends as the command exits; Docker records its code a moment later.
            let deadline = Instant::now() + Duration::from_secs(5);
            let code = loop {
                match exec.exit_code().await.expect("the exec's state") {
                    Some(code) => break code,
                    None if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    None => panic!("exec {args:?} did not end"),
                }
            };
            assert_eq!(
                code,
                0,
                "exec {args:?}: {}",
                String::from_utf8_lossy(&stderr)
            );
            String::from_utf8_lossy(&stdout).into_owned()
        })
    }

    fn psql(&self, sql: &str) -> String {
        self.exec(&self.postgres, &["psql", "-U", "postgres", "-Atc", sql])
    }

    fn redis_cli(&self, db: u8, args: &[&str]) -> String {
        let db = db.to_string();
        let mut all = vec!["redis-cli", "-n", &db];
        all.extend_from_slice(args);
        self.exec(&self.redis, &all)
    }

    /// Every database, and every Redis key with its index.
    fn contents(&self) -> String {
        let databases = self.psql("SELECT datname FROM pg_database ORDER BY 1");
        let keys = self.exec(
            &self.redis,
            &[
                "sh",
                "-c",
                r#"for i in $(seq 0 15); do redis-cli -n $i --scan | sort | sed "s/^/db$i /"; done"#,
            ],
        );
        format!("databases:\n{databases}keys:\n{keys}")
    }

    fn debuglab(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_debuglab"))
            .args(args)
            .env("DEBUGLAB_POSTGRES_URL", &self.postgres_url)
            .env("DEBUGLAB_REDIS_URL", &self.redis_url)
            .env_remove("RUST_LOG")
            .output()
            .expect("debuglab starts")
    }

    /// `debuglab run <scenario> --variant <variant> --format json`, which must
    /// succeed; its report.
    fn run_json(&self, scenario: &str, variant: &str) -> serde_json::Value {
        let output = self.debuglab(&["run", scenario, "--variant", variant, "--format", "json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("a JSON report")
    }

    /// Waits (bounded) until the servers have seen the killed child's
    /// connections close: the kernel closes them at once, but a server
    /// notices a moment later, and until then the session counts as alive.
    fn wait_until_no_session_is_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let postgres = self.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'debuglab-session-%'",
            );
            let redis = self.redis_cli(0, &["CLIENT", "LIST"]);
            if postgres.trim() == "0" && !redis.contains("name=debuglab-session-") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the killed child still looks connected after 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn clean(&self) -> String {
        let output = self.debuglab(&["clean", "--server"]);
        assert!(
            output.status.success(),
            "clean --server failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// This test program again, as a child that uses the servers through the
    /// harness (a template, a database copied from it, a leased Redis index
    /// with a key), says READY, then panics or hangs as `mode` says.
    fn start_child(&self, mode: &str) -> Child {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_uses_the_servers",
                "--nocapture",
            ])
            .env(CHILD_MODE, mode)
            .env("DEBUGLAB_POSTGRES_URL", &self.postgres_url)
            .env("DEBUGLAB_REDIS_URL", &self.redis_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test program starts again");
        let mut lines = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok);
        assert!(
            lines.any(|line| line.contains("READY")),
            "the child never got ready"
        );
        std::thread::spawn(move || lines.for_each(drop));
        child
    }
}

/// The child's side (see [`Servers::start_child`]).
#[test]
#[ignore = "run by the other tests in this file as a child process"]
fn child_uses_the_servers() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _database = runtime.block_on(async {
        let database = debuglab_harness::testing::TestDatabase::create(
            "external_child",
            Some(&unbounded_cache::CATALOGUE),
        )
        .await;
        let server = debuglab_harness::redis::server().await.expect("Redis");
        // A released index is this process's to lease again, run after run.
        let first = server.lease_database().await.expect("a Redis database");
        first.release().await;
        let redis = server.lease_database().await.expect("a Redis database");
        assert_eq!(redis.db(), first.db(), "a released index was not reused");
        let mut conn = redis.probe_connection().await.expect("a connection");
        deadpool_redis::redis::cmd("SET")
            .arg("cache:1")
            .arg("x")
            .query_async::<()>(&mut conn)
            .await
            .expect("SET");
        database
    });
    println!("READY");
    match mode.as_str() {
        "panic" => panic!("a run that panics halfway"),
        _ => loop {
            std::thread::park();
        },
    }
}

#[test]
fn a_run_leaves_the_server_as_it_was() {
    let servers = Servers::start();
    let before = servers.contents();
    servers.run_json("unbounded-cache", "fixed");
    assert_eq!(servers.contents(), before);
}

/// The stand-in server keeps no log debuglab can read (no logging
/// collector), as a managed server would not let it: the evidence that
/// comes from the log is replaced where it can be, and the report says what
/// is missing and why.
#[test]
fn evidence_from_the_server_log_is_replaced_or_said_to_be_missing() {
    let servers = Servers::start();
    let before = servers.contents();
    let report = servers.run_json("slow-query", "buggy");
    assert_eq!(report["healthy"], false, "{report:#}");
    let evidence: Vec<&str> = report["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|line| line.as_str())
        .collect();
    let has = |words: &[&str]| {
        evidence
            .iter()
            .any(|line| words.iter().all(|word| line.contains(word)))
    };
    assert!(
        has(&["generic plan", "pg_stat_statements", "Seq Scan on orders"]),
        "{evidence:#?}"
    );
    assert!(
        has(&["slow-query log: unavailable", "logging collector is off"]),
        "{evidence:#?}"
    );
    assert!(
        has(&[
            "plan of the real call",
            "unavailable",
            "logging collector is off"
        ]),
        "{evidence:#?}"
    );
    assert_eq!(servers.contents(), before);
}

#[test]
fn a_panicking_process_leaves_the_server_as_it_was() {
    let servers = Servers::start();
    let before = servers.contents();
    let mut child = servers.start_child("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was meant to panic");
    assert_eq!(servers.contents(), before);
}

#[test]
fn clean_removes_what_a_killed_process_left_and_nothing_of_a_live_one() {
    let servers = Servers::start();
    let before = servers.contents();
    let mut child = servers.start_child("hang");
    let during = servers.contents();
    assert_ne!(during, before, "the child made nothing on the servers");
    // The child is alive: clean must leave everything of it alone.
    servers.clean();
    assert_eq!(servers.contents(), during, "clean touched a live session");
    // A template an older debuglab version left, as it left them.
    let legacy = "debuglab_tpl_slow_query_orders_1a2b3c4";
    servers.psql(&format!("CREATE DATABASE {legacy}"));
    servers.psql(&format!(
        "ALTER DATABASE {legacy} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
    ));
    child.kill().unwrap(); // SIGKILL: no exit hook runs.
    child.wait().unwrap();
    servers.wait_until_no_session_is_connected();
    let cleaned = servers.clean();
    assert!(
        cleaned.contains("removed 3 debuglab database(s)"),
        "{cleaned}"
    );
    assert_eq!(servers.contents(), before);
}

#[test]
fn ctrl_c_leaves_the_server_as_it_was() {
    let servers = Servers::start();
    let before = servers.contents();
    let mut child = Command::new(env!("CARGO_BIN_EXE_debuglab"))
        .args(["run", "unbounded-cache", "--variant", "buggy"])
        .env("DEBUGLAB_POSTGRES_URL", &servers.postgres_url)
        .env("DEBUGLAB_REDIS_URL", &servers.redis_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the run has made something on the server, then interrupt it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while servers.contents() == before {
        assert!(Instant::now() < deadline, "the run never used the server");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Removed before the process ended: no waiting.
    assert_eq!(
        servers.contents(),
        before,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
