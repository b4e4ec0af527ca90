//! Redis: one server per process, a database index per run, `deadpool-redis`
//! pools built by the harness, and the probes an engineer would reach for
//! (`INFO`, `DBSIZE`, `CLIENT LIST`, `SLOWLOG`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection, AsyncCommands};
use deadpool_redis::{ConnectionAddr, ConnectionInfo, Pool, RedisConnectionInfo, Runtime};
use testcontainers::core::WaitFor;
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{HarnessError, Result};
use crate::pools::{CheckoutLog, PoolRegistry};
use crate::service::{
    connect_to_named_server, env_setting, on_harness_runtime, random_password, start_container,
    ContainerSpec, Service, ServiceContainer,
};
use crate::{redact, session, PoolSettings};

/// The container's signal that its server accepts connections, for
/// testcontainers to wait on: Redis listens before it writes this line (to
/// stdout, once, in the official image and debuglab's alike).
const READY_LINE: &str = "Ready to accept connections";
/// How long the first connection to a container's server may take; the
/// server has said it accepts them, so one attempt tells.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Databases a container is started with; index 0 is never leased.
const CONTAINER_DATABASES: i64 = 64;
/// The client name of the harness's own connections, left out of client counts.
const PROBE_CLIENT_NAME: &str = "debuglab-probe";

/// The Redis server this process uses.
pub struct RedisServer {
    base: ConnectionInfo,
    description: String,
    /// The harness's own container, kept for the life of the process (dropping
    /// it would remove the container); `None` for a server named by URL.
    container: Option<ServiceContainer>,
    /// On a server named by URL, a connection to database 0 held for the
    /// life of the process, named after the session: it says the session is
    /// alive and claims database indexes (see [`crate::external`]).
    presence: Option<MultiplexedConnection>,
    free_databases: Mutex<Vec<i64>>,
    available: Semaphore,
}

static SERVER: OnceCell<RedisServer> = OnceCell::const_new();

/// The process's Redis server, started (or connected) on first use.
pub async fn server() -> Result<&'static RedisServer> {
    SERVER.get_or_try_init(RedisServer::start).await
}

/// The process's server if it was named by URL and has been used.
pub(crate) fn started_external() -> Option<&'static RedisServer> {
    SERVER.get().filter(|server| server.container.is_none())
}

/// Connection details and a masked description of the server at `url`.
pub(crate) fn url_info(url: &str) -> Result<(ConnectionInfo, String)> {
    crate::postgres::register_url_password(url);
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|error| {
        HarnessError::InvalidSetting {
            var: "DEBUGLAB_REDIS_URL",
            detail: redact::redact(&error.to_string()),
        }
    })?;
    Ok((
        ConnectionInfo::from(info),
        format!("the server at {}", redact::redact(url)),
    ))
}

/// Opens this session's presence connection to database 0 (on the harness's
/// runtime: a multiplexed connection lives as long as the runtime that
/// drives it) and registers the clean-up at exit.
async fn open_presence(base: &ConnectionInfo) -> Result<MultiplexedConnection> {
    let mut info = base.clone();
    info.redis.db = 0;
    let conn = on_harness_runtime(async move {
        let mut conn = open_connection(info).await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(crate::external::presence_name())
            .query_async::<()>(&mut conn)
            .await?;
        Ok::<_, redis::RedisError>(conn)
    })
    .await
    .map_err(HarnessError::redis("opening the session's connection"))?;
    session::on_exit(crate::external::clean_up_at_exit);
    Ok(conn)
}

impl RedisServer {
    async fn start() -> Result<RedisServer> {
        let (base, description, container) = match env_setting(Service::Redis.url_env_var()) {
            Some(url) => {
                let (info, description) = url_info(&url)?;
                (info, description, None)
            }
            None => {
                let password = random_password();
                redact::register_secret(&password);
                let databases = CONTAINER_DATABASES.to_string();
                let cmd = [
                    "redis-server",
                    "--protected-mode",
                    "no",
                    "--requirepass",
                    &password,
                    "--databases",
                    &databases,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--slowlog-log-slower-than",
                    "10000",
                ];
                let container = start_container(ContainerSpec {
                    service: Service::Redis,
                    cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                    // redis-cli reads REDISCLI_AUTH: `docker exec … redis-cli`
                    // then works without a password on the command line.
                    env: vec![("REDISCLI_AUTH".to_owned(), password.clone())],
                    ready: WaitFor::message_on_stdout(READY_LINE),
                })
                .await?;
                let info = ConnectionInfo {
                    addr: ConnectionAddr::Tcp(container.host.clone(), container.port),
                    redis: RedisConnectionInfo {
                        password: Some(password),
                        ..Default::default()
                    },
                };
                let description = format!(
                    "{} on {}:{}",
                    container.image, container.host, container.port
                );
                (info, description, Some(container))
            }
        };
        raise_open_file_limit();
        let mut conn = match container {
            Some(_) => first_connection(&base, &description).await?,
            None => {
                connect_to_named_server(Service::Redis, &description, open_pinged(base.clone()))
                    .await?
            }
        };
        // Servers that forbid CONFIG (managed Redis) have the default 16 databases.
        let databases: i64 = redis::cmd("CONFIG")
            .arg("GET")
            .arg("databases")
            .query_async::<Vec<String>>(&mut conn)
            .await
            .ok()
            .and_then(|pair| pair.get(1)?.parse().ok())
            .unwrap_or(16);
        let free: Vec<i64> = (1..databases).rev().collect();
        tracing::info!(server = %description, databases, "Redis ready");
        let presence = match container {
            Some(_) => None,
            None => Some(open_presence(&base).await?),
        };
        Ok(RedisServer {
            base,
            description,
            container,
            presence,
            available: Semaphore::new(free.len()),
            free_databases: Mutex::new(free),
        })
    }

    /// Where the server is, with any password masked.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The id of the server's container; `None` for a server named by URL.
    pub fn container_id(&self) -> Option<&str> {
        self.container
            .as_ref()
            .map(|container| container.id.as_str())
    }

    /// Leases a database index no other run uses until it is released.
    ///
    /// On a server named by URL, only empty databases are leased, so the lab
    /// never flushes data it did not write.
    pub async fn lease_database(&'static self) -> Result<RunRedis> {
        loop {
            let permit = self
                .available
                .acquire()
                .await
                .map_err(HarnessError::redis("leasing a database"))?;
            permit.forget();
            let db = self
                .free_databases
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop()
                .expect("a permit guarantees a free database");
            let run = RunRedis {
                inner: Arc::new(RedisInner { server: self, db }),
                pools: None,
            };
            let Some(presence) = &self.presence else {
                return Ok(run);
            };
            if self.claim(presence.clone(), &run).await? {
                return Ok(run);
            }
        }
    }

    /// Claims `run`'s index on a server named by URL: only an index no other
    /// session holds and that is empty, so the lab never flushes data it did
    /// not write. An index refused now is not offered again in this process.
    async fn claim(&self, mut presence: MultiplexedConnection, run: &RunRedis) -> Result<bool> {
        let db = run.db();
        let _making = crate::external::making().await?;
        if !crate::external::claim_redis_database(&mut presence, db).await? {
            tracing::info!(
                db,
                "Redis database {db} is leased by another debuglab process"
            );
            return Ok(false);
        }
        if run.dbsize().await? == 0 {
            return Ok(true);
        }
        crate::external::unclaim_redis_database(&mut presence, db).await?;
        tracing::warn!(
            db,
            "Redis database {db} is not empty; the lab leaves it alone"
        );
        Ok(false)
    }

    /// The session's presence connection (servers named by URL only).
    pub(crate) fn presence(&self) -> Option<MultiplexedConnection> {
        self.presence.clone()
    }

    /// Connection details of the server, for the harness's own clean-up.
    pub(crate) fn base_info(&self) -> &ConnectionInfo {
        &self.base
    }
}

/// Raises this process's soft limit on open files to its hard limit: a
/// scenario that leaks connections on purpose must show the leak as evidence,
/// not die of "too many open files" on a laptop whose default is 256 or 1024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A connection that has answered `PING`.
async fn open_pinged(info: ConnectionInfo) -> redis::RedisResult<MultiplexedConnection> {
    let mut conn = open_connection(info).await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(conn)
}

/// The first connection to a container's server, which has said it accepts
/// connections ([`READY_LINE`]): one attempt.
async fn first_connection(
    info: &ConnectionInfo,
    description: &str,
) -> Result<MultiplexedConnection> {
    let not_ready = |detail: String| HarnessError::ServiceNotReady {
        service: Service::Redis,
        address: description.to_owned(),
        waited_secs: FIRST_CONNECT_TIMEOUT.as_secs(),
        detail,
    };
    match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, open_pinged(info.clone())).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(not_ready(redact::redact(&error.to_string()))),
        Err(_) => Err(not_ready("no answer".to_owned())),
    }
}

/// A `deadpool-redis` pool of `settings`' size and wait timeout, every
/// connection opened before it is returned: the run's pools and replicas'
/// alike. Each connection it hands to a workload's request is noted in `checkouts`.
pub(crate) async fn open_pool(
    info: ConnectionInfo,
    settings: PoolSettings,
    checkouts: Option<Arc<CheckoutLog>>,
) -> Result<Pool> {
    let manager = deadpool_redis::Manager::new_with_config(info, connection_config())
        .map_err(HarnessError::redis("configuring a pool"))?;
    let mut builder = Pool::builder(manager)
        .max_size(settings.max_connections as usize)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1);
    if let Some(checkouts) = checkouts {
        // The pool is warm, so every checkout during the run recycles a connection.
        builder = builder.post_recycle(deadpool_redis::Hook::sync_fn(move |_, _| {
            checkouts.record(Service::Redis);
            Ok(())
        }));
    }
    let pool = builder
        .build()
        .map_err(HarnessError::redis("building a pool"))?;
    let warm = futures::future::try_join_all((0..settings.max_connections).map(|_| pool.get()))
        .await
        .map_err(HarnessError::redis("warming up a pool"))?;
    drop(warm);
    Ok(pool)
}

pub(crate) async fn open_connection(
    info: ConnectionInfo,
) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(redis::ConnectionInfo::from(info))?
        .get_multiplexed_async_connection_with_config(&connection_config())
        .await
}

/// How long a Redis connection waits to connect or for a reply before it
/// gives up. Redis answers within milliseconds; redis-rs' own defaults (1 s
/// to connect, 500 ms per reply) turned a busy laptop's scheduling delays
/// into failed requests and probes. This only stops a dead server from
/// holding a connection forever; the run's budget bounds the rest.
const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// The settings of every connection the harness opens, pooled or not.
fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REPLY_LIMIT))
        .set_response_timeout(Some(REPLY_LIMIT))
}

/// A key's remaining time to live, as `PTTL` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key expires after this long.
    Expires(Duration),
    /// The key exists and never expires (`PTTL` answers -1).
    Never,
    /// The key does not exist (`PTTL` answers -2): it expired, or was never set.
    Gone,
}

impl Ttl {
    /// Reads a `PTTL` reply, sentinels included.
    pub fn from_pttl(millis: i64) -> Ttl {
        match millis {
            -1 => Ttl::Never,
            millis if millis < 0 => Ttl::Gone,
            millis => Ttl::Expires(Duration::from_millis(millis as u64)),
        }
    }
}

/// A Redis database index that belongs to one run; flushed and returned when the run ends.
#[derive(Clone)]
pub struct RunRedis {
    inner: Arc<RedisInner>,
    /// Where the pools built for a run's variant are remembered (see [`crate::pools`]).
    pools: Option<Arc<PoolRegistry>>,
}

struct RedisInner {
    server: &'static RedisServer,
    db: i64,
}

impl RunRedis {
    /// The database index (`SELECT n`) this run owns.
    pub fn db(&self) -> i64 {
        self.inner.db
    }

    fn connection_info(&self) -> ConnectionInfo {
        let mut info = self.inner.server.base.clone();
        info.redis.db = self.inner.db;
        info
    }

    /// The database's connection URL, password included: for replica
    /// processes (pass it in the environment; the password is a registered secret).
    pub fn url(&self) -> String {
        let info = self.connection_info();
        let (scheme, host, port) = match &info.addr {
            ConnectionAddr::Tcp(host, port) => ("redis", host.clone(), *port),
            ConnectionAddr::TcpTls { host, port, .. } => ("rediss", host.clone(), *port),
            ConnectionAddr::Unix(path) => {
                return format!("redis+unix://{}?db={}", path.display(), info.redis.db)
            }
        };
        let auth = match (&info.redis.username, &info.redis.password) {
            (Some(user), Some(password)) => format!("{user}:{password}@"),
            (None, Some(password)) => format!(":{password}@"),
            _ => String::new(),
        };
        format!("{scheme}://{auth}{host}:{port}/{}", info.redis.db)
    }

    /// Builds the `deadpool-redis` pool the variant under test uses; its size
    /// and wait timeout come from the scenario's workload, never the variant.
    ///
    /// The pool starts warm, every connection open, as in a service that has
    /// been running for a while.
    pub async fn pool(&self, settings: PoolSettings) -> Result<Pool> {
        let checkouts = self
            .pools
            .as_ref()
            .map(|pools| Arc::clone(pools.checkouts()));
        let pool = open_pool(self.connection_info(), settings, checkouts).await?;
        if let Some(pools) = &self.pools {
            pools.register_redis(&pool, settings);
        }
        Ok(pool)
    }

    /// This database, its pools remembered in `pools` (a run's).
    pub(crate) fn with_registry(mut self, pools: Arc<PoolRegistry>) -> RunRedis {
        self.pools = Some(pools);
        self
    }

    /// A connection for the harness's own commands, named so that client counts leave it out.
    pub async fn probe_connection(&self) -> Result<MultiplexedConnection> {
        let mut conn = open_connection(self.connection_info())
            .await
            .map_err(HarnessError::redis("opening a probe connection"))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(PROBE_CLIENT_NAME)
            .query_async::<()>(&mut conn)
            .await
            .map_err(HarnessError::redis("naming a probe connection"))?;
        Ok(conn)
    }

    /// One section of `INFO` (`clients`, `memory`, `stats`, ...) as name → value.
    pub async fn info(&self, section: &str) -> Result<BTreeMap<String, String>> {
        let mut conn = self.probe_connection().await?;
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis(format!("reading INFO {section}")))?;
        Ok(parse_info(&text))
    }

    /// Keys in this run's database.
    pub async fn dbsize(&self) -> Result<i64> {
        let mut conn = self.probe_connection().await?;
        redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis("reading DBSIZE"))
    }

    /// `CLIENT LIST` lines of the clients connected to this run's database,
    /// the harness's own probes left out.
    pub async fn clients(&self) -> Result<Vec<String>> {
        let mut conn = self.probe_connection().await?;
        let text: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis("reading CLIENT LIST"))?;
        let db_field = format!("db={}", self.inner.db);
        let probe_field = format!("name={PROBE_CLIENT_NAME}");
        Ok(text
            .lines()
            .filter(|line| line.split(' ').any(|field| field == db_field))
            .filter(|line| !line.split(' ').any(|field| field == probe_field))
            .map(str::to_owned)
            .collect())
    }

    /// A plain client for this run's database, for what a pool cannot do
    /// (pub/sub needs a connection of its own).
    pub fn client(&self) -> Result<redis::Client> {
        redis::Client::open(redis::ConnectionInfo::from(self.connection_info()))
            .map_err(HarnessError::redis("configuring a client"))
    }

    /// Closes every connection to this run's database except the harness's
    /// own probes (`CLIENT KILL ID`); returns how many were closed.
    pub async fn disconnect_clients(&self) -> Result<usize> {
        let ids: Vec<String> = self
            .clients()
            .await?
            .iter()
            .filter_map(|line| {
                line.split(' ')
                    .find_map(|field| field.strip_prefix("id="))
                    .map(str::to_owned)
            })
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.probe_connection().await?;
        for id in &ids {
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut conn)
                .await;
        }
        Ok(ids.len())
    }

    /// Up to `limit` keys matching `pattern` (`SCAN … MATCH`).
    pub async fn keys(&self, pattern: &str, limit: usize) -> Result<Vec<String>> {
        let mut conn = self.probe_connection().await?;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(HarnessError::redis("scanning keys"))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
        keys.truncate(limit);
        Ok(keys)
    }

    /// Up to `limit` keys matching `pattern` with their remaining time to live ([`Ttl`]).
    pub async fn key_ttls(&self, pattern: &str, limit: usize) -> Result<Vec<(String, Ttl)>> {
        let keys = self.keys(pattern, limit).await?;
        Ok(self
            .values_and_ttls(keys)
            .await?
            .into_iter()
            .map(|(key, _, ttl)| (key, ttl))
            .collect())
    }

    /// Every key matching `pattern` with its value (`SCAN`, then `GET`);
    /// keys that are not strings, or vanished meanwhile, are left out.
    pub async fn key_values(&self, pattern: &str) -> Result<Vec<(String, String)>> {
        let keys = self.keys(pattern, usize::MAX).await?;
        Ok(self
            .values_and_ttls(keys)
            .await?
            .into_iter()
            .filter_map(|(key, value, _)| value.map(|value| (key, value)))
            .collect())
    }

    /// `GET` and `PTTL` of each of `keys`, in one pipeline: `None` for a key
    /// that does not exist (or is not a string).
    pub async fn values_and_ttls(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<Vec<(String, Option<String>, Ttl)>> {
        let keys: Vec<String> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.probe_connection().await?;
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("GET").arg(key);
            pipe.cmd("PTTL").arg(key);
        }
        let replies: Vec<redis::Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis("reading keys and their PTTL"))?;
        Ok(keys
            .into_iter()
            .zip(replies.chunks(2))
            .map(|(key, pair)| {
                let value = redis::from_redis_value::<Option<String>>(pair[0].clone())
                    .ok()
                    .flatten();
                let ttl = redis::from_redis_value::<i64>(pair[1].clone())
                    .map_or(Ttl::Gone, Ttl::from_pttl);
                (key, value, ttl)
            })
            .collect())
    }

    /// The newest `count` entries of `SLOWLOG GET`, one line each.
    pub async fn slowlog(&self, count: usize) -> Result<Vec<String>> {
        let mut conn = self.probe_connection().await?;
        let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
            .arg("GET")
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(HarnessError::redis("reading SLOWLOG"))?;
        Ok(entries.iter().filter_map(format_slowlog_entry).collect())
    }

    /// Empties `SLOWLOG`, so that what it shows afterwards belongs to this run.
    pub async fn reset_slowlog(&self) -> Result<()> {
        let mut conn = self.probe_connection().await?;
        redis::cmd("SLOWLOG")
            .arg("RESET")
            .query_async::<()>(&mut conn)
            .await
            .map_err(HarnessError::redis("resetting SLOWLOG"))
    }

    /// Flushes the database and gives its index back for another run.
    ///
    /// Connections the run left open to the database (a leaked subscriber,
    /// say) are closed first, so they cannot outlive the run.
    pub async fn release(&self) {
        if let Err(error) = self.disconnect_clients().await {
            tracing::warn!("{error}");
        }
        let flushed = async {
            let mut conn = self.probe_connection().await?;
            conn.flushdb::<()>()
                .await
                .map_err(HarnessError::redis("flushing the run's database"))
        }
        .await;
        if let Err(error) = flushed {
            // A database that could not be flushed is not handed out again.
            tracing::warn!("{error}");
            return;
        }
        let server = self.inner.server;
        server
            .free_databases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(self.inner.db);
        server.available.add_permits(1);
    }
}

/// An `INFO` reply as name → value (what [`RunRedis::info`] returns), for
/// `INFO` read on a connection the caller keeps (a sampler's).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn format_slowlog_entry(entry: &redis::Value) -> Option<String> {
    let redis::Value::Array(fields) = entry else {
        return None;
    };
    let integer = |value: &redis::Value| match value {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    };
    let micros = integer(fields.get(2)?)?;
    let args = match fields.get(3)? {
        redis::Value::Array(args) => args
            .iter()
            .filter_map(|arg| match arg {
                redis::Value::BulkString(bytes) => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                redis::Value::SimpleString(text) => Some(text.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    Some(format!("SLOWLOG: {:.2} ms  {args}", micros as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pttl_sentinels_mean_no_expiry_and_gone() {
        assert_eq!(Ttl::from_pttl(-1), Ttl::Never);
        assert_eq!(Ttl::from_pttl(-2), Ttl::Gone);
        assert_eq!(Ttl::from_pttl(0), Ttl::Expires(Duration::ZERO));
        assert_eq!(
            Ttl::from_pttl(1500),
            Ttl::Expires(Duration::from_millis(1500))
        );
    }

    #[test]
    fn parses_info_sections() {
        let info = parse_info("# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n\r\n");
        assert_eq!(info.get("connected_clients").map(String::as_str), Some("3"));
        assert_eq!(info.len(), 2);
    }

    #[test]
    fn formats_slowlog_entries() {
        let entry = redis::Value::Array(vec![
            redis::Value::Int(7),
            redis::Value::Int(1_700_000_000),
            redis::Value::Int(12_500),
            redis::Value::Array(vec![
                redis::Value::BulkString(b"KEYS".to_vec()),
                redis::Value::BulkString(b"*".to_vec()),
            ]),
        ]);
        assert_eq!(
            format_slowlog_entry(&entry).unwrap(),
            "SLOWLOG: 12.50 ms  KEYS *"
        );
    }
}
