//! Servers debuglab did not start end as they began.
//!
//! An instructor may point a whole class at one PostgreSQL and one Redis
//! (`DEBUGLAB_POSTGRES_URL`, `DEBUGLAB_REDIS_URL`). On such a server a
//! `debuglab` process makes only things it can recognise and remove:
//!
//! * **PostgreSQL databases** named `debuglab_<session>_…`, `<session>` being
//!   the process's ten-hex-digit [`session::id`]: each run's database
//!   (`debuglab_<session>_<scenario>_<variant>_<n>`) and each template
//!   (`debuglab_<session>_tpl_<template>`). No roles, no other objects
//!   outside those databases.
//! * **Redis database indexes**, claimed with a key in database 0,
//!   `debuglab:lease:<index>` = `<session>`, set with `NX` so that two
//!   processes never lease the same index, and only when the index is empty.
//!   Everything in a leased index was written by debuglab.
//!
//! **Templates are per process, not reused across runs.** A seeded template is
//! dropped with the process that seeded it, so a server never holds more than
//! one copy per running process, and none once the class stops. Reusing
//! templates across processes, keyed by schema and seed version, would save a
//! few seconds of seeding per process, but a seed is Rust code whose version an
//! author must remember to bump: a stale template would make a scenario judge
//! yesterday's data, and it would stay on the server after the class. Seeding
//! once per process is what a container gets anyway.
//!
//! **Templates of older versions.** Before sessions had a fixed-width id,
//! each process's template was `debuglab_tpl_<template>_<id>` (`<id>` seven to
//! ten hex digits) and nothing dropped it. `clean --server` removes databases
//! of exactly that shape too. Those versions held no presence connection, so
//! clean cannot tell whether one of them still runs: run it once the class
//! has moved to this version.
//!
//! **When things go.** A run's database and index go when the run ends; what
//! is left (templates, leases, a run cut short by a panic or Ctrl-C) goes when
//! the process ends: at the CLI's exit and after Ctrl-C ([`crate::shutdown`]),
//! or from the session's exit hook (a test program's end, a panic out of
//! `main`). A process killed with `kill -9` cannot clean up; `debuglab clean
//! --server` then removes what **ended** sessions left.
//!
//! **Which sessions have ended.** Each process holds one connection to each
//! server for its whole life, named `debuglab-session-<session>`
//! (PostgreSQL's `application_name`, Redis's `CLIENT SETNAME`). The kernel
//! closes it when the process dies, however it dies, so `clean --server` sees
//! which sessions are alive, on any machine of the class, and never touches
//! theirs. A server that closes idle connections (`idle_session_timeout`,
//! Redis `timeout`) would make a running session look ended; leave those off
//! for the class's servers.

use std::collections::BTreeSet;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection};
use deadpool_redis::ConnectionInfo;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Executor};

use crate::error::{HarnessError, Result};
use crate::service::{env_setting, Service};
use crate::session;

/// What every database debuglab makes on a server starts with.
pub const DATABASE_PREFIX: &str = "debuglab_";
/// What the templates of older debuglab versions were named with:
/// `debuglab_tpl_<template>_<session id of 7–10 hex digits>`.
pub const LEGACY_TEMPLATE_PREFIX: &str = "debuglab_tpl_";
/// What the connection a session holds open on each server is named after.
pub const PRESENCE_PREFIX: &str = "debuglab-session-";
/// The Redis key (in database 0) that claims a database index for a session.
pub const LEASE_KEY_PREFIX: &str = "debuglab:lease:";
/// How long the clean-up at exit may take before the process leaves anyway.
const EXIT_CLEANUP_WAIT: Duration = Duration::from_secs(20);

/// The name of a database of this session: `debuglab_<session>_<rest>`.
pub(crate) fn database_name(rest: &str) -> String {
    format!("{DATABASE_PREFIX}{}_{rest}", session::id())
}

/// The name of this session's presence connection.
pub(crate) fn presence_name() -> String {
    format!("{PRESENCE_PREFIX}{}", session::id())
}

/// The session a debuglab database belongs to; `None` for any other database.
fn session_of_database(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(DATABASE_PREFIX)?;
    let (session, tail) = rest.split_at_checked(10)?;
    let is_session = session
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_session && tail.starts_with('_')).then_some(session)
}

/// Whether `name` is a template an older debuglab version left:
/// `debuglab_tpl_<template>_<7–10 lowercase hex digits>`, the template's
/// name being lowercase letters, digits and underscores.
fn is_legacy_template(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(LEGACY_TEMPLATE_PREFIX) else {
        return false;
    };
    let Some((template, session)) = rest.rsplit_once('_') else {
        return false;
    };
    let is_hex = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (7..=10).contains(&session.len())
        && is_hex(session)
        && !template.is_empty()
        && template
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whose leftovers to remove.
enum Owners {
    /// This process's, at its end.
    ThisSession,
    /// Those of sessions whose presence connection is gone.
    Ended(BTreeSet<String>),
}

impl Owners {
    /// Whether the database `name` is one of these owners' leftovers:
    /// a session's database, or (for `clean --server`) an older version's template.
    fn own_database(&self, name: &str) -> bool {
        match session_of_database(name) {
            Some(session) => self.owns(session),
            None => matches!(self, Owners::Ended(_)) && is_legacy_template(name),
        }
    }

    fn owns(&self, session: &str) -> bool {
        match self {
            Owners::ThisSession => session == session::id(),
            Owners::Ended(alive) => !alive.contains(session) && session != session::id(),
        }
    }
}

/// Registered by a server named by URL when it is first used: removes this
/// session's databases and leases before the process ends.
pub(crate) fn clean_up_at_exit() {
    // A thread of its own: at exit the caller's runtime (and its thread-locals)
    // may be gone, and the clean-up needs a runtime.
    let cleaning = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| tracing::warn!("cannot clean up the servers: {error}"))
            .ok()?;
        runtime.block_on(async {
            match tokio::time::timeout(EXIT_CLEANUP_WAIT, remove_own_leftovers()).await {
                Ok(()) => {}
                Err(_) => tracing::warn!(
                    "cleaning up the servers took over {} s; `debuglab clean --server` finishes it",
                    EXIT_CLEANUP_WAIT.as_secs()
                ),
            }
        });
        Some(())
    });
    let _ = cleaning.join();
}

/// Closed (`true`) once the process has begun to clean up: what is made
/// after that would outlive it. Making a database or claiming an index holds
/// it shared, so the clean-up waits for whatever is in flight, on any runtime
/// (each run has one of its own, which a Ctrl-C does not stop).
static GATE: tokio::sync::RwLock<bool> = tokio::sync::RwLock::const_new(false);

/// Leave to make a database or claim an index on a server named by URL,
/// until the statement is done; refused once the process is ending.
pub(crate) async fn making() -> Result<tokio::sync::RwLockReadGuard<'static, bool>> {
    let gate = GATE.read().await;
    if *gate {
        return Err(HarnessError::Ending);
    }
    Ok(gate)
}

async fn remove_own_leftovers() {
    *GATE.write().await = true;
    if let Some(server) = crate::postgres::started_external() {
        let result = async {
            let mut admin = connect_postgres(server.base_options()).await?;
            end_statements_in_flight(&mut admin).await;
            drop_databases(&mut admin, &Owners::ThisSession).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!("could not remove this session's databases: {error}");
        }
    }
    if let Some(server) = crate::redis::started_external() {
        let result = async {
            // The presence connection made every claim: a claim a Ctrl-C cut
            // short was sent on it, so the server has applied it before it
            // answers what is sent on it now.
            let mut conn = match server.presence() {
                Some(conn) => conn,
                None => connect_redis(server.base_info()).await?,
            };
            release_leases(server.base_info(), &mut conn, &Owners::ThisSession).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!("could not release this session's Redis databases: {error}");
        }
    }
}

/// What `debuglab clean --server` removed, and from where.
#[derive(Debug, Default)]
pub struct ServerCleanSummary {
    /// The servers looked at, passwords masked.
    pub servers: Vec<String>,
    /// PostgreSQL databases dropped.
    pub databases: Vec<String>,
    /// Redis database indexes flushed and released.
    pub redis_databases: Vec<i64>,
    /// Sessions still running, whose databases and leases were left alone.
    pub sessions_alive: usize,
}

/// Removes, from the servers named by `DEBUGLAB_POSTGRES_URL` and
/// `DEBUGLAB_REDIS_URL`, what debuglab sessions that have ended left there.
pub async fn remove_server_leftovers() -> Result<ServerCleanSummary> {
    let postgres_url = env_setting(Service::Postgres.url_env_var());
    let redis_url = env_setting(Service::Redis.url_env_var());
    if postgres_url.is_none() && redis_url.is_none() {
        return Err(HarnessError::NoServerNamed);
    }
    let mut summary = ServerCleanSummary::default();
    let mut alive_anywhere = BTreeSet::new();
    if let Some(url) = postgres_url {
        let (options, description) = crate::postgres::url_options(&url)?;
        let mut admin = connect_postgres(&options).await?;
        let alive = live_postgres_sessions(&mut admin).await?;
        alive_anywhere.extend(alive.iter().cloned());
        summary.databases = drop_databases(&mut admin, &Owners::Ended(alive)).await?;
        summary.servers.push(description);
    }
    if let Some(url) = redis_url {
        let (info, description) = crate::redis::url_info(&url)?;
        let mut conn = connect_redis(&info).await?;
        let alive = live_redis_sessions(&mut conn).await?;
        alive_anywhere.extend(alive.iter().cloned());
        summary.redis_databases = release_leases(&info, &mut conn, &Owners::Ended(alive)).await?;
        summary.servers.push(description);
    }
    summary.sessions_alive = alive_anywhere.len();
    Ok(summary)
}

async fn connect_postgres(options: &PgConnectOptions) -> Result<PgConnection> {
    options.connect().await.map_err(HarnessError::postgres(
        "connecting to the maintenance database",
    ))
}

async fn live_postgres_sessions(admin: &mut PgConnection) -> Result<BTreeSet<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE starts_with(application_name, $1)",
    )
    .bind(PRESENCE_PREFIX)
    .fetch_all(&mut *admin)
    .await
    .map_err(HarnessError::postgres("listing debuglab sessions"))?;
    Ok(sessions_named(names))
}

/// Ends this session's other connections, waiting until each has gone.
///
/// A Ctrl-C drops a run's future, but a `CREATE DATABASE` it had sent goes
/// on on the server and would commit after the clean-up looked; ended with
/// its backend, it rolls back. (`pg_terminate_backend` waits from
/// PostgreSQL 14 on; an older server is only asked.)
async fn end_statements_in_flight(admin: &mut PgConnection) {
    let ended = sqlx::query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
          WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(presence_name())
    .execute(&mut *admin)
    .await;
    if let Err(error) = ended {
        tracing::debug!("could not end this session's connections: {error}");
    }
}

fn sessions_named(names: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    names
        .into_iter()
        .filter_map(|name| name.strip_prefix(PRESENCE_PREFIX).map(str::to_owned))
        .collect()
}

/// Drops the debuglab databases `owners` owns; returns their names.
async fn drop_databases(admin: &mut PgConnection, owners: &Owners) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
    )
    .bind(DATABASE_PREFIX)
    .fetch_all(&mut *admin)
    .await
    .map_err(HarnessError::postgres("listing databases"))?;
    let mut dropped = Vec::new();
    for name in names {
        if !owners.own_database(&name) {
            continue;
        }
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        // A template cannot be dropped until it is an ordinary database again.
        admin
            .execute(format!("ALTER DATABASE {quoted} WITH IS_TEMPLATE false").as_str())
            .await
            .map_err(HarnessError::postgres(format!("unmarking {name}")))?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)").as_str())
            .await
            .map_err(HarnessError::postgres(format!("dropping {name}")))?;
        tracing::info!(database = %name, "dropped");
        dropped.push(name);
    }
    Ok(dropped)
}

async fn connect_redis(info: &ConnectionInfo) -> Result<MultiplexedConnection> {
    let mut info = info.clone();
    info.redis.db = 0;
    connect_redis_db(info).await
}

async fn live_redis_sessions(conn: &mut MultiplexedConnection) -> Result<BTreeSet<String>> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .map_err(HarnessError::redis("reading CLIENT LIST"))?;
    Ok(sessions_named(list.lines().filter_map(|line| {
        line.split(' ')
            .find_map(|field| field.strip_prefix("name="))
            .map(str::to_owned)
    })))
}

/// Claims database index `db` for this session (`SET … NX` in database 0);
/// `false` if another session holds it. An index this session claimed
/// before (and a run released) is its own again: the claim lasts as long as
/// the process.
pub(crate) async fn claim_redis_database(
    conn: &mut MultiplexedConnection,
    db: i64,
) -> Result<bool> {
    let key = format!("{LEASE_KEY_PREFIX}{db}");
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(session::id())
        .arg("NX")
        .query_async(conn)
        .await
        .map_err(HarnessError::redis("claiming a database"))?;
    if set.is_some() {
        return Ok(true);
    }
    // Only this session writes its own id, so the answer cannot turn into
    // "ours" meanwhile (`SET … NX GET` would save the round trip, on Redis 7 only).
    let holder: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(conn)
        .await
        .map_err(HarnessError::redis("reading a claim"))?;
    Ok(holder.as_deref() == Some(session::id()))
}

/// Gives back a claim this session made on an index it will not use.
pub(crate) async fn unclaim_redis_database(
    conn: &mut MultiplexedConnection,
    db: i64,
) -> Result<()> {
    redis::cmd("DEL")
        .arg(format!("{LEASE_KEY_PREFIX}{db}"))
        .query_async::<()>(conn)
        .await
        .map_err(HarnessError::redis("releasing a claim"))
}

/// Flushes and releases the indexes whose lease `owners` owns; returns them.
async fn release_leases(
    base: &ConnectionInfo,
    conn: &mut MultiplexedConnection,
    owners: &Owners,
) -> Result<Vec<i64>> {
    let keys = lease_keys(conn).await?;
    let mut released = Vec::new();
    for key in keys {
        let Some(db) = key
            .strip_prefix(LEASE_KEY_PREFIX)
            .and_then(|db| db.parse().ok())
        else {
            continue;
        };
        let holder: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(conn)
            .await
            .map_err(HarnessError::redis("reading a lease"))?;
        if !holder.is_some_and(|session| owners.owns(&session)) {
            continue;
        }
        // The index was empty when it was claimed: all it holds is debuglab's.
        let mut info = base.clone();
        info.redis.db = db;
        let mut leased = connect_redis_db(info).await?;
        redis::cmd("FLUSHDB")
            .query_async::<()>(&mut leased)
            .await
            .map_err(HarnessError::redis(format!("flushing database {db}")))?;
        unclaim_redis_database(conn, db).await?;
        tracing::info!(db, "released Redis database");
        released.push(db);
    }
    Ok(released)
}

/// Every lease key in database 0 (`SCAN`, so a large database 0 is not blocked).
async fn lease_keys(conn: &mut MultiplexedConnection) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{LEASE_KEY_PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .map_err(HarnessError::redis("listing leases"))?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return Ok(keys);
        }
    }
}

async fn connect_redis_db(info: ConnectionInfo) -> Result<MultiplexedConnection> {
    crate::redis::open_connection(info)
        .await
        .map_err(HarnessError::redis("connecting"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_session_databases_are_recognised() {
        assert_eq!(
            session_of_database("debuglab_0a1b2c3d4e_tpl_orders"),
            Some("0a1b2c3d4e")
        );
        assert_eq!(
            session_of_database("debuglab_0a1b2c3d4e_slow_query_buggy_1"),
            Some("0a1b2c3d4e")
        );
        // An instructor's own database, or one of an older debuglab, is not ours.
        assert_eq!(session_of_database("debuglab_notes"), None);
        assert_eq!(
            session_of_database("debuglab_tpl_slow_query_orders_1a2b"),
            None
        );
        assert_eq!(session_of_database("debuglab_0a1b2c3d4e"), None);
        assert_eq!(session_of_database("debuglab_0A1B2C3D4E_x"), None);
        assert_eq!(session_of_database("postgres"), None);
    }

    #[test]
    fn only_older_versions_templates_are_recognised_as_theirs() {
        for name in [
            "debuglab_tpl_slow_query_orders_1a2b3c4",
            "debuglab_tpl_unbounded_cache_catalogue_0a1b2c3d4e",
            "debuglab_tpl_orders_ffffffff",
        ] {
            assert!(is_legacy_template(name), "{name}");
            assert!(Owners::Ended(BTreeSet::new()).own_database(name), "{name}");
            // A process's own clean-up at exit leaves them to `clean --server`.
            assert!(!Owners::ThisSession.own_database(name), "{name}");
        }
        for name in [
            "debuglab_tpl_orders",             // no session id
            "debuglab_tpl_orders_1a2b3c",      // too short for one
            "debuglab_tpl_orders_1a2b3c4d5e6", // too long
            "debuglab_tpl_orders_1A2B3C4",     // not lowercase hex
            "debuglab_tpl__1a2b3c4",           // no template name
            "debuglab_tpl_Orders_1a2b3c4",     // not a template name
            "debuglab_templates_1a2b3c4",
            "classroom_tpl_orders_1a2b3c4",
            "debuglab_notes",
        ] {
            assert!(!is_legacy_template(name), "{name}");
            assert!(!Owners::Ended(BTreeSet::new()).own_database(name), "{name}");
        }
    }

    #[test]
    fn this_sessions_name_is_recognised_as_its_own() {
        let name = database_name("tpl_orders");
        assert_eq!(session_of_database(&name), Some(session::id()));
        assert!(Owners::ThisSession.owns(session::id()));
        assert!(!Owners::Ended(BTreeSet::new()).owns(session::id()));
        let alive = BTreeSet::from(["0a1b2c3d4e".to_owned()]);
        assert!(!Owners::Ended(alive.clone()).owns("0a1b2c3d4e"));
        assert!(Owners::Ended(alive).owns("ffffffffff"));
    }
}
