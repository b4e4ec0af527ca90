//! The harness starts real services, isolates runs inside them, and labels
//! every container it starts.

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;

use debuglab_harness::postgres;
use debuglab_harness::redis::server as redis_server;
use debuglab_harness::session;
use debuglab_harness::testing::TestDatabase;
use debuglab_harness::PoolSettings;

const SMALL_POOL: PoolSettings = PoolSettings {
    max_connections: 2,
    acquire_timeout: std::time::Duration::from_secs(5),
};

/// The labels of each container of this process's session, as Docker lists them.
async fn session_containers() -> Vec<HashMap<String, String>> {
    let client = debuglab_harness::docker::connect()
        .await
        .expect("Docker answers");
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={}", session::SESSION_LABEL, session::id())],
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
    containers
        .into_iter()
        .map(|container| container.labels.unwrap_or_default())
        .collect()
}

/// Whether one of `containers` carries the `debuglab` labels of `service`.
fn labelled(containers: &[HashMap<String, String>], service: &str) -> bool {
    containers.iter().any(|labels| {
        labels.get(session::LABEL).map(String::as_str) == Some("true")
            && labels.get(session::SERVICE_LABEL).map(String::as_str) == Some(service)
    })
}

#[tokio::test]
async fn postgres_runs_get_their_own_database_with_query_statistics() {
    let first = TestDatabase::create("services", None).await;
    let name = first.database.name().to_owned();
    let pool = first.database.pool(SMALL_POOL).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        .execute(&pool)
        .await
        .unwrap();
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, name);
    // pg_stat_statements is preloaded, so the extension's view answers.
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_statements")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(calls >= 0);
    // Read on a probe connection kept open, as a sampler does, the server's
    // count is what statement_totals says: the pool's statements, not the
    // probe's own reads.
    if first.database.has_statement_stats() {
        let mut probe = first.database.probe_connection().await.unwrap();
        let kept = postgres::StatementTotals::read(&mut probe).await.unwrap();
        assert!(kept.calls >= 3, "{kept:?}");
        let again = postgres::StatementTotals::read(&mut probe).await.unwrap();
        assert_eq!(again, kept);
        assert_eq!(first.database.statement_totals().await.unwrap(), kept);
    }
    // The run's connections are what pg_stat_activity shows, never a probe:
    // not the one asking, nor another kept open by a sampler at that moment.
    let held = pool.acquire().await.unwrap();
    let _sampler = first.database.probe_connection().await.unwrap();
    let activity = first.database.activity().await.unwrap();
    assert_eq!(activity.len(), pool.size() as usize, "{activity:?}");
    drop(held);
    pool.close().await;
    first.close().await;

    // A second run's database does not see the first one's table.
    let second = TestDatabase::create("services", None).await;
    assert_ne!(second.database.name(), name);
    let mut conn = second.database.probe_connection().await.unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tables, 0);
    drop(conn);
    second.close().await;

    let server = postgres::server().await.unwrap();
    if std::env::var_os("DEBUGLAB_POSTGRES_URL").is_none() {
        let containers = session_containers().await;
        assert!(
            labelled(&containers, "postgres"),
            "the PostgreSQL container ({}) is not labelled: {containers:?}",
            server.description()
        );
    }
}

#[tokio::test]
async fn redis_runs_lease_separate_databases() {
    let server = redis_server().await.unwrap();
    let first = server.lease_database().await.unwrap();
    let second = server.lease_database().await.unwrap();
    assert_ne!(first.db(), second.db());

    let pool = first.pool(SMALL_POOL).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    deadpool_redis::redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(first.dbsize().await.unwrap(), 1);
    assert_eq!(second.dbsize().await.unwrap(), 0);

    // A released database comes back empty.
    first.release().await;
    second.release().await;
    let again = server.lease_database().await.unwrap();
    assert_eq!(again.dbsize().await.unwrap(), 0);
    again.release().await;

    if std::env::var_os("DEBUGLAB_REDIS_URL").is_none() {
        let containers = session_containers().await;
        assert!(
            labelled(&containers, "redis"),
            "the Redis container is not labelled: {containers:?}"
        );
    }
}
