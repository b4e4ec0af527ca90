//! PostgreSQL: one server per process, a fresh database per run, pools built
//! by the harness, and the probes an engineer would reach for.
//!
//! The server is a container (official image, or the offline one) unless
//! `DEBUGLAB_POSTGRES_URL` names a running server. Containers start with
//! `pg_stat_statements` preloaded, data on a tmpfs, and the server log written
//! as JSON lines so runs can read their own slow-query lines and plans.
//!
//! On a server named by URL, every database made here (runs' and templates')
//! is named `debuglab_<session>_…` and dropped when the process ends; templates
//! are seeded per process, not kept between runs (see [`crate::external`]).

mod plan;
mod probes;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};
use testcontainers::core::WaitFor;
use tokio::sync::OnceCell;

pub use plan::{Plan, PlanNode};
pub use probes::{
    lock_waits_on, ActivityRow, LogEntry, LogMark, LoggedPlan, StatementStats, StatementTotals,
    RUN_CONNECTIONS,
};
pub use sqlx::postgres::{PgConnection, PgPool};

use crate::error::{HarnessError, Result};
use crate::latency::LatencyProxy;
use crate::pools::{CheckoutLog, PoolRegistry};
use crate::service::{
    connect_to_named_server, env_setting, on_harness_runtime, random_password, start_container,
    ContainerSpec, Service, ServiceContainer,
};
use crate::{progress, redact, session, PoolSettings};

/// The container's signal that its server has started, for testcontainers
/// to wait on.
///
/// Not "database system is ready to accept connections": with the logging
/// collector on (the JSON log the probes read), that line goes to the log
/// file, not to Docker. This one is the last the postmaster writes to the
/// container's stderr before the collector takes its output over, once per
/// container in both images: the official image's init server runs under
/// `pg_ctl`, which sends its output to stdout. A Docker health command
/// (`pg_isready`) would see readiness itself, but Docker runs it for the
/// container's whole life (a third of a core at 100 ms on Docker 20.10,
/// which has no `start_interval`), so it is not used.
const POSTMASTER_STARTED: &str = "redirecting log output to logging collector process";
/// How long a container's server may take from [`POSTMASTER_STARTED`] to
/// accepting connections: it opens its sockets and starts a clean cluster,
/// a few milliseconds in practice.
const ACCEPT_WINDOW: Duration = Duration::from_secs(10);

/// The server-wide settings a container starts with.
///
/// `fsync` and friends are off because the data is throw-away and lives on a
/// tmpfs; the log goes to `log/postgresql.json` so that probes can read it
/// with `pg_read_file`.
const SERVER_SETTINGS: &[&str] = &[
    "shared_preload_libraries=pg_stat_statements",
    "pg_stat_statements.track=top",
    "pg_stat_statements.track_utility=off",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    // Seeding a template and building a fix's index are bulk work: memory
    // for index builds, no checkpoints in the middle, no WAL for replicas.
    "maintenance_work_mem=256MB",
    "max_wal_size=4GB",
    "wal_level=minimal",
    "max_wal_senders=0",
    "max_connections=200",
    "logging_collector=on",
    "log_destination=jsonlog",
    // The log's timestamps are read as UTC (`LogEntry::logged_at`).
    "log_timezone=UTC",
    "log_directory=log",
    "log_filename=postgresql.log",
    "log_rotation_age=0",
    "log_rotation_size=0",
];

/// A schema change, applied with sqlx's migrator.
///
/// Start `sql` with the line `-- no-transaction` for statements that cannot
/// run in a transaction, such as `CREATE INDEX CONCURRENTLY` (sqlx's own
/// convention for migration files).
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Version; migrations apply in ascending order, once each.
    pub version: i64,
    /// What the migration does, in a few words.
    pub description: &'static str,
    /// The SQL to run.
    pub sql: &'static str,
}

impl Migration {
    fn to_sqlx(self) -> sqlx::migrate::Migration {
        let no_tx = self.sql.trim_start().starts_with("-- no-transaction");
        sqlx::migrate::Migration::new(
            self.version,
            self.description.into(),
            MigrationType::Simple,
            self.sql.into(),
            no_tx,
        )
    }
}

/// A fixed list of migrations as a sqlx [`MigrationSource`].
#[derive(Debug)]
struct MigrationList(Vec<sqlx::migrate::Migration>);

impl<'s> MigrationSource<'s> for MigrationList {
    fn resolve(
        self,
    ) -> BoxFuture<'s, std::result::Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>>
    {
        Box::pin(async move { Ok(self.0) })
    }
}

/// A database seeded once per process and copied for each run.
///
/// Seeding a million rows takes about a second; copying the seeded database
/// with `CREATE DATABASE … TEMPLATE` takes a tenth of that.
pub struct DatabaseTemplate {
    /// Unique among templates: lowercase letters, digits and underscores.
    pub name: &'static str,
    /// What seeding does, for the progress display ("seeding 1,000,000 orders").
    pub description: &'static str,
    /// Creates the schema and the data, on a connection to the new template.
    pub seed: for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<()>>,
}

/// What the server lets the probes do.
#[derive(Clone, Debug)]
struct Capabilities {
    server_version_num: i32,
    pg_stat_statements: bool,
    /// Path of the JSON log, relative to the data directory, or why it
    /// cannot be read (the end of a report's sentence: "… cannot be read here: <why>").
    json_log: std::result::Result<String, String>,
}

/// The PostgreSQL server this process uses.
pub struct PostgresServer {
    base_options: PgConnectOptions,
    /// `postgres://user:password@host:port`, for replica processes (see [`RunDatabase::url`]).
    url_base: String,
    description: String,
    capabilities: Capabilities,
    templates: Mutex<HashMap<&'static str, Arc<OnceCell<String>>>>,
    /// `CREATE DATABASE … TEMPLATE` fails if the template is in use, including
    /// by another copy in progress, so copies are made one at a time.
    copying: tokio::sync::Mutex<()>,
    next_database: AtomicU64,
    /// Kept for the life of the process: dropping it would remove the container.
    _container: Option<ServiceContainer>,
    /// On a server named by URL, a connection held open for the life of the
    /// process: it tells `debuglab clean --server` this session is alive
    /// (see [`crate::external`]).
    _presence: Option<Mutex<PgConnection>>,
}

static SERVER: OnceCell<PostgresServer> = OnceCell::const_new();

/// The process's PostgreSQL server, started (or connected) on first use.
pub async fn server() -> Result<&'static PostgresServer> {
    SERVER.get_or_try_init(PostgresServer::start).await
}

/// The process's server if it was named by URL and has been used.
pub(crate) fn started_external() -> Option<&'static PostgresServer> {
    SERVER.get().filter(|server| server._container.is_none())
}

/// Connection options and a masked description of the server at `url`.
pub(crate) fn url_options(url: &str) -> Result<(PgConnectOptions, String)> {
    register_url_password(url);
    let options =
        PgConnectOptions::from_str(url).map_err(|error| HarnessError::InvalidSetting {
            var: "DEBUGLAB_POSTGRES_URL",
            detail: redact::redact(&error.to_string()),
        })?;
    Ok((options, format!("the server at {}", redact::redact(url))))
}

/// Opens this session's presence connection (on the harness's runtime, which
/// lives as long as the process) and registers the clean-up at exit.
async fn open_presence(base: &PgConnectOptions) -> Result<PgConnection> {
    let options = base
        .clone()
        .application_name(&crate::external::presence_name());
    let conn = on_harness_runtime(async move { options.connect().await })
        .await
        .map_err(HarnessError::postgres("opening the session's connection"))?;
    session::on_exit(crate::external::clean_up_at_exit);
    Ok(conn)
}

impl PostgresServer {
    async fn start() -> Result<PostgresServer> {
        let (base_options, url_base, description, container) =
            match env_setting(Service::Postgres.url_env_var()) {
                Some(url) => {
                    let (options, description) = url_options(&url)?;
                    (options, url_base_of(&url), description, None)
                }
                None => {
                    let password = random_password();
                    redact::register_secret(&password);
                    let mut cmd = vec!["postgres".to_owned()];
                    for setting in SERVER_SETTINGS {
                        cmd.push("-c".to_owned());
                        cmd.push((*setting).to_owned());
                    }
                    let container = start_container(ContainerSpec {
                        service: Service::Postgres,
                        cmd,
                        env: vec![("POSTGRES_PASSWORD".to_owned(), password.clone())],
                        ready: WaitFor::message_on_stderr(POSTMASTER_STARTED),
                    })
                    .await?;
                    let options = PgConnectOptions::new()
                        .host(&container.host)
                        .port(container.port)
                        .username("postgres")
                        .password(&password)
                        .database("postgres");
                    let description = format!(
                        "{} on {}:{}",
                        container.image, container.host, container.port
                    );
                    let url_base = format!(
                        "postgres://postgres:{password}@{}:{}",
                        container.host, container.port
                    );
                    (options, url_base, description, Some(container))
                }
            };
        // The harness's own statements are noise in a learner's log output.
        let base_options = base_options
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(10));
        let mut admin = match container {
            Some(_) => connect_after_start(&base_options, &description).await?,
            None => {
                connect_to_named_server(Service::Postgres, &description, base_options.connect())
                    .await?
            }
        };
        let capabilities = Capabilities::detect(&mut admin).await?;
        tracing::info!(server = %description, ?capabilities, "PostgreSQL ready");
        let presence = match container {
            Some(_) => None,
            None => Some(Mutex::new(open_presence(&base_options).await?)),
        };
        Ok(PostgresServer {
            base_options,
            url_base,
            description,
            capabilities,
            templates: Mutex::new(HashMap::new()),
            copying: tokio::sync::Mutex::new(()),
            next_database: AtomicU64::new(1),
            _container: container,
            _presence: presence,
        })
    }

    /// Options for the maintenance database, for the harness's own clean-up.
    pub(crate) fn base_options(&self) -> &PgConnectOptions {
        &self.base_options
    }

    /// Where the server is, with any password masked.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The id of the server's container; `None` for a server named by URL.
    pub fn container_id(&self) -> Option<&str> {
        self._container
            .as_ref()
            .map(|container| container.id.as_str())
    }

    /// A connection to the server's maintenance database, for the harness's own use.
    ///
    /// Named after the session, so that the clean-up at exit can end the
    /// statements in flight that make databases ([`crate::external`]).
    async fn admin(&self) -> Result<PgConnection> {
        self.base_options
            .clone()
            .application_name(&crate::external::presence_name())
            .connect()
            .await
            .map_err(HarnessError::postgres(
                "connecting to the maintenance database",
            ))
    }

    /// Creates a database for one run, named after `label`, copied from `template` if given.
    pub(crate) async fn create_database(
        &'static self,
        label: &str,
        template: Option<&'static DatabaseTemplate>,
    ) -> Result<RunDatabase> {
        let number = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = identifier(&crate::external::database_name(&format!(
            "{label}_{number}"
        )));
        let mut admin = self.admin().await?;
        match template {
            Some(template) => {
                let template_name = self.template(template).await?;
                let strategy = if self.capabilities.server_version_num >= 150_000 {
                    " STRATEGY = FILE_COPY"
                } else {
                    ""
                };
                let _one_at_a_time = self.copying.lock().await;
                let _making = crate::external::making().await?;
                admin
                    .execute(
                        format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template_name}"{strategy}"#)
                            .as_str(),
                    )
                    .await
                    .map_err(HarnessError::postgres(format!("copying {template_name}")))?;
            }
            None => {
                let _making = crate::external::making().await?;
                admin
                    .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .map_err(HarnessError::postgres("creating a database"))?;
            }
        }
        let database = RunDatabase {
            inner: Arc::new(DatabaseInner {
                server: self,
                options: self.base_options.clone().database(&name),
                name,
                proxies: Mutex::new(Vec::new()),
            }),
            pools: None,
        };
        if template.is_none() && self.capabilities.pg_stat_statements {
            let mut conn = database.probe_connection().await?;
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await
                .map_err(HarnessError::postgres("creating pg_stat_statements"))?;
        }
        Ok(database)
    }

    /// The name of `template`'s database, seeding it on first use in this process.
    async fn template(&'static self, template: &'static DatabaseTemplate) -> Result<String> {
        let cell = Arc::clone(
            self.templates
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(template.name)
                .or_default(),
        );
        cell.get_or_try_init(|| self.seed_template(template))
            .await
            .cloned()
    }

    async fn seed_template(&'static self, template: &'static DatabaseTemplate) -> Result<String> {
        let name = identifier(&crate::external::database_name(&format!(
            "tpl_{}",
            template.name
        )));
        let _step = progress::step(format!("{} (once per process)", template.description));
        let mut admin = self.admin().await?;
        admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}""#).as_str())
            .await
            .map_err(HarnessError::postgres("dropping an old template"))?;
        {
            let _making = crate::external::making().await?;
            admin
                .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                .await
                .map_err(HarnessError::postgres("creating a template"))?;
        }
        {
            let mut conn = self
                .base_options
                .clone()
                .database(&name)
                .connect()
                .await
                .map_err(HarnessError::postgres("connecting to a new template"))?;
            if self.capabilities.pg_stat_statements {
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    .await
                    .map_err(HarnessError::postgres("creating pg_stat_statements"))?;
            }
            (template.seed)(&mut conn).await?;
            // Fresh statistics, so the planner sees the seeded table as it is.
            conn.execute("VACUUM ANALYZE")
                .await
                .map_err(HarnessError::postgres("analyzing a template"))?;
            conn.close().await.ok();
        }
        // No connections from now on: a connection to a template blocks every copy.
        admin
            .execute(
                format!(r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"#)
                    .as_str(),
            )
            .await
            .map_err(HarnessError::postgres("marking a template"))?;
        Ok(name)
    }
}

impl Capabilities {
    async fn detect(admin: &mut PgConnection) -> Result<Capabilities> {
        let server_version_num: i32 =
            sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
                .fetch_one(&mut *admin)
                .await
                .map_err(HarnessError::postgres("reading the server version"))?;
        let preload: String =
            sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
                .fetch_one(&mut *admin)
                .await
                .map_err(HarnessError::postgres("reading shared_preload_libraries"))?;
        let pg_stat_statements = preload
            .split(',')
            .any(|lib| lib.trim() == "pg_stat_statements");
        let json_log = readable_json_log(admin, server_version_num).await;
        Ok(Capabilities {
            server_version_num,
            pg_stat_statements,
            json_log,
        })
    }
}

/// Where the server's JSON log is, if this login can read it; otherwise why
/// not, as the end of a sentence ("… cannot be read: <why>").
async fn readable_json_log(
    admin: &mut PgConnection,
    server_version_num: i32,
) -> std::result::Result<String, String> {
    if server_version_num < 150_000 {
        return Err(format!(
            "PostgreSQL {} writes no JSON log (15 and later do)",
            server_version_num / 10_000
        ));
    }
    let setting = |name: &'static str| {
        sqlx::query_scalar::<_, Option<String>>("SELECT current_setting($1, true)").bind(name)
    };
    let collector = setting("logging_collector")
        .fetch_one(&mut *admin)
        .await
        .ok()
        .flatten();
    if collector.as_deref() != Some("on") {
        return Err(
            "the server's logging collector is off (logging_collector), so it writes no log file"
                .to_owned(),
        );
    }
    let destination = setting("log_destination")
        .fetch_one(&mut *admin)
        .await
        .ok()
        .flatten();
    if !destination
        .as_deref()
        .unwrap_or_default()
        .contains("jsonlog")
    {
        return Err(format!(
            "the server writes no JSON log (log_destination = '{}')",
            destination.unwrap_or_default()
        ));
    }
    let path: Option<String> = sqlx::query_scalar("SELECT pg_current_logfile('jsonlog')")
        .fetch_one(&mut *admin)
        .await
        .map_err(|_| "finding the server's log file (pg_current_logfile) needs superuser or pg_monitor, which this login lacks".to_owned())?;
    let path = path.ok_or_else(|| "the server has no JSON log file open".to_owned())?;
    sqlx::query("SELECT pg_stat_file($1)")
        .bind(&path)
        .execute(&mut *admin)
        .await
        .map_err(|_| "reading the server's files needs superuser or pg_read_server_files, which this login lacks".to_owned())?;
    Ok(path)
}

/// The first connection to a container's server, which has just said it
/// started ([`POSTMASTER_STARTED`]).
///
/// Only the errors of the moments before it accepts connections are waited
/// out, within [`ACCEPT_WINDOW`]: refused, or reset by Docker's port proxy
/// while nothing listens yet, or "the database system is starting up".
/// Anything else (a wrong password, a crash) is reported at once.
async fn connect_after_start(
    options: &PgConnectOptions,
    description: &str,
) -> Result<PgConnection> {
    let deadline = tokio::time::Instant::now() + ACCEPT_WINDOW;
    loop {
        match options.connect().await {
            Ok(conn) => return Ok(conn),
            Err(error) if is_starting_up(&error) && tokio::time::Instant::now() < deadline => {
                tracing::trace!("PostgreSQL is starting up: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => {
                return Err(HarnessError::ServiceNotReady {
                    service: Service::Postgres,
                    address: description.to_owned(),
                    waited_secs: ACCEPT_WINDOW.as_secs(),
                    detail: redact::redact(&error.to_string()),
                })
            }
        }
    }
}

/// Whether `error` is one a server gives while it opens its sockets and starts.
fn is_starting_up(error: &sqlx::Error) -> bool {
    use std::io::ErrorKind;
    match error {
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
        ),
        // cannot_connect_now: "the database system is starting up".
        sqlx::Error::Database(database) => database.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// A database that belongs to one run; dropped by the harness when the run ends.
#[derive(Clone)]
pub struct RunDatabase {
    inner: Arc<DatabaseInner>,
    /// Where the pools built for a run's variant are remembered (see [`crate::pools`]).
    pools: Option<Arc<PoolRegistry>>,
}

struct DatabaseInner {
    server: &'static PostgresServer,
    name: String,
    options: PgConnectOptions,
    /// The network in front of pools built with latency; they live as long
    /// as the database.
    proxies: Mutex<Vec<LatencyProxy>>,
}

impl RunDatabase {
    /// The database's name (it shows in `pg_stat_activity` and the server log).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The database's connection URL, password included: for replica
    /// processes of the service (pass it in the environment, never in
    /// arguments; it is a registered secret, so reports mask it).
    pub fn url(&self) -> String {
        format!("{}/{}", self.inner.server.url_base, self.name())
    }

    /// Builds the pool the variant under test uses.
    ///
    /// Its size and acquire timeout come from the scenario's workload, never
    /// from the variant, so a "fix" that only enlarges the pool is impossible.
    ///
    /// The pool starts warm, every connection open, like the pool of a service
    /// that has been running for a while: connecting is not part of what a
    /// run measures.
    pub async fn pool(&self, settings: PoolSettings) -> Result<PgPool> {
        self.registered_pool(self.inner.options.clone(), settings)
            .await
    }

    /// Builds the variant's pool, as [`RunDatabase::pool`] does, behind a
    /// network that holds every message to the server for `delay`
    /// ([`LatencyProxy`]): each statement's round trip costs what it costs
    /// between a service and a database in another zone.
    pub async fn pool_with_latency(
        &self,
        settings: PoolSettings,
        delay: Duration,
    ) -> Result<PgPool> {
        let options = &self.inner.options;
        let proxy =
            LatencyProxy::start((options.get_host().to_owned(), options.get_port()), delay).await?;
        let through = options
            .clone()
            .host(&proxy.address().ip().to_string())
            .port(proxy.address().port());
        self.inner
            .proxies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(proxy);
        self.registered_pool(through, settings).await
    }

    /// A warm pool on `options`, remembered in the run's registry so its
    /// settings are read back at the end.
    async fn registered_pool(
        &self,
        options: PgConnectOptions,
        settings: PoolSettings,
    ) -> Result<PgPool> {
        let checkouts = self
            .pools
            .as_ref()
            .map(|pools| Arc::clone(pools.checkouts()));
        let pool = open_pool(options, settings, checkouts).await?;
        if let Some(pools) = &self.pools {
            pools.register_postgres(&pool, settings);
        }
        Ok(pool)
    }

    /// This database, its pools remembered in `pools` (a run's).
    pub(crate) fn with_registry(mut self, pools: Arc<PoolRegistry>) -> RunDatabase {
        self.pools = Some(pools);
        self
    }

    /// A connection for the harness's own queries: not counted by
    /// `pg_stat_statements` and never in the slow-query log.
    pub async fn probe_connection(&self) -> Result<PgConnection> {
        // Settings travel in the start-up message, not as SET statements: a
        // server that counts utility statements (`track_utility`, on by
        // default outside debuglab's containers) would count the SETs as the
        // run's work.
        let mut options = self
            .inner
            .options
            .clone()
            .application_name("debuglab-probe")
            .options([("log_min_duration_statement", "-1")]);
        if self.has_server_log() {
            // Overrides a database's `log_plans_of_later_connections`.
            options = options.options([("auto_explain.log_min_duration", "-1")]);
        }
        if self.inner.server.capabilities.pg_stat_statements {
            options = options.options([("pg_stat_statements.track", "none")]);
        }
        options
            .connect()
            .await
            .map_err(HarnessError::postgres("opening a probe connection"))
    }

    /// Applies `base` (usually `sqlx::migrate!()`) followed by `extra` with sqlx's migrator.
    pub async fn migrate(&self, base: &Migrator, extra: &[Migration]) -> Result<()> {
        let migrations = base
            .iter()
            .cloned()
            .chain(extra.iter().map(|migration| migration.to_sqlx()))
            .collect();
        let migrator = Migrator::new(MigrationList(migrations))
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: self.name().to_owned(),
                detail: format!("invalid migrations: {error}"),
            })?;
        let mut conn = self.probe_connection().await?;
        migrator
            .run_direct(&mut conn)
            .await
            .map_err(|error| HarnessError::Setup {
                scenario: self.name().to_owned(),
                detail: format!("migration failed: {error}"),
            })
    }

    /// Logs every statement in this database that runs longer than `threshold`
    /// (`log_min_duration_statement`); applies to connections opened afterwards.
    ///
    /// Nothing is set where the server log cannot be read: no one would read
    /// the lines, and a server named by URL may let only superusers set it.
    pub async fn log_statements_slower_than(&self, threshold: Duration) -> Result<()> {
        if !self.has_server_log() {
            return Ok(());
        }
        let mut conn = self.probe_connection().await?;
        conn.execute(
            format!(
                r#"ALTER DATABASE "{}" SET log_min_duration_statement = {}"#,
                self.name(),
                threshold.as_millis()
            )
            .as_str(),
        )
        .await
        .map_err(HarnessError::postgres("setting log_min_duration_statement"))?;
        Ok(())
    }

    /// Has the server log the plan of every statement that connections to
    /// this database opened from now on run (`auto_explain`: rows and
    /// buffers, no per-node timing), for [`RunDatabase::logged_plans_since`]:
    /// which statements ran at the same time, in whichever process, by the
    /// server's own clock. The harness's probe connections are left out.
    ///
    /// `Err` says why not: the server log cannot be read, or the database
    /// not altered (a server named by URL may let only superusers).
    pub async fn log_plans_of_later_connections(&self) -> std::result::Result<(), String> {
        if let Some(why) = self.server_log_unavailable() {
            return Err(why.to_owned());
        }
        let settings = [
            "session_preload_libraries = 'auto_explain'",
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_analyze = on",
            "auto_explain.log_buffers = on",
            "auto_explain.log_timing = off",
            "auto_explain.log_format = 'json'",
        ];
        let mut conn = self
            .probe_connection()
            .await
            .map_err(|error| error.to_string())?;
        for setting in settings {
            let alter = format!(r#"ALTER DATABASE "{}" SET {setting}"#, self.name());
            conn.execute(alter.as_str())
                .await
                .map_err(|error| format!("the database could not be set to log plans: {error}"))?;
        }
        Ok(())
    }

    pub(crate) async fn drop_database(&self) {
        let result = async {
            let mut admin = self.inner.server.admin().await?;
            admin
                .execute(
                    format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name()).as_str(),
                )
                .await
                .map_err(HarnessError::postgres("dropping the run's database"))?;
            Ok::<_, HarnessError>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!("could not drop database {}: {error}", self.name());
        }
    }
}

/// A pool of `settings`' size and acquire timeout, every connection opened
/// before it is returned: the run's pools and replicas' pools alike. Each
/// connection it hands to a workload's request is noted in `checkouts`.
pub(crate) async fn open_pool(
    options: PgConnectOptions,
    settings: PoolSettings,
    checkouts: Option<Arc<CheckoutLog>>,
) -> Result<PgPool> {
    let mut pool_options = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout);
    if let Some(checkouts) = checkouts {
        // The pool is warm, so every checkout during the run reuses a connection.
        pool_options = pool_options.before_acquire(move |_, _| {
            checkouts.record(Service::Postgres);
            Box::pin(async { Ok(true) })
        });
    }
    let pool = pool_options
        .connect_with(options)
        .await
        .map_err(HarnessError::postgres("opening a pool"))?;
    let warm = futures::future::try_join_all((0..settings.max_connections).map(|_| pool.acquire()))
        .await
        .map_err(HarnessError::postgres("warming up a pool"))?;
    drop(warm);
    Ok(pool)
}

/// `scheme://user:password@host:port` of a URL: what is left without its path and query.
fn url_base_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// Registers the password of a `scheme://user:password@host` URL as a secret.
pub(crate) fn register_url_password(url: &str) {
    if let Some(rest) = url.split_once("://").map(|(_, rest)| rest) {
        if let Some((credentials, _)) = rest.split_once('@') {
            if let Some((_, password)) = credentials.split_once(':') {
                redact::register_secret(password);
            }
        }
    }
}

/// `text` as a lowercase SQL identifier: letters, digits and underscores, at most 63 bytes.
fn identifier(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(63);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_safe() {
        assert_eq!(
            identifier("debuglab_1a2b_slow-query_buggy_3"),
            "debuglab_1a2b_slow_query_buggy_3"
        );
        assert_eq!(identifier(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn no_transaction_marker_is_honoured() {
        let concurrent = Migration {
            version: 2,
            description: "index",
            sql: "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c)",
        };
        assert!(concurrent.to_sqlx().no_tx);
        let plain = Migration {
            sql: "CREATE INDEX i ON t (c)",
            ..concurrent
        };
        assert!(!plain.to_sqlx().no_tx);
    }

    #[test]
    fn url_bases_drop_path_and_query() {
        assert_eq!(
            url_base_of("postgres://u:p@db:5432/app?sslmode=disable"),
            "postgres://u:p@db:5432"
        );
        assert_eq!(url_base_of("postgres://db"), "postgres://db");
    }

    #[test]
    fn only_start_up_errors_are_waited_out() {
        use std::io::{Error, ErrorKind};
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::UnexpectedEof,
        ] {
            assert!(
                is_starting_up(&sqlx::Error::Io(Error::from(kind))),
                "{kind:?}"
            );
        }
        assert!(!is_starting_up(&sqlx::Error::Io(Error::from(
            ErrorKind::PermissionDenied
        ))));
        assert!(!is_starting_up(&sqlx::Error::Protocol(
            "password authentication failed".into()
        )));
        assert!(!is_starting_up(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn url_passwords_are_registered() {
        register_url_password("postgres://app:Pw9xLq7Tz@db:5432/app");
        assert_eq!(redact::redact("oops Pw9xLq7Tz"), "oops ***");
    }
}
