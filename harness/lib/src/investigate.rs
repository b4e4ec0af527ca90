//! Where a run's databases are, and the commands that look inside them
//! while (`--live`) or after (`--keep`) the symptom happens.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A run's databases, left in place for investigation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Kept {
    /// The run's PostgreSQL databases.
    pub postgres: Vec<KeptDatabase>,
    /// The run's Redis databases.
    pub redis: Vec<KeptRedis>,
}

/// A PostgreSQL database left for investigation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptDatabase {
    /// The container it lives in (`None` for a server named by URL).
    pub container_id: Option<String>,
    /// The database's name.
    pub name: String,
}

/// A Redis database left for investigation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptRedis {
    /// The container it lives in (`None` for a server named by URL).
    pub container_id: Option<String>,
    /// The database index.
    pub db: i64,
}

impl Kept {
    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.postgres.is_empty() && self.redis.is_empty()
    }

    /// The `docker exec … psql` and `redis-cli` commands that open each
    /// database, with queries worth running there. `interactive` adds `-it`
    /// (a terminal is attached); without it the commands run from scripts.
    pub fn commands(&self, interactive: bool) -> String {
        let tty = if interactive { "-it " } else { "" };
        let mut out = String::new();
        for database in &self.postgres {
            match &database.container_id {
                Some(container) => {
                    let short = &container[..container.len().min(12)];
                    let _ = writeln!(out, "PostgreSQL (database {}):", database.name);
                    let _ = writeln!(
                        out,
                        "  docker exec {tty}{short} psql -U postgres -d {}",
                        database.name
                    );
                    let _ = writeln!(out, "  then, for example:");
                    for query in POSTGRES_QUERIES {
                        let _ = writeln!(out, "    {query}");
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "PostgreSQL database {} on the server in DEBUGLAB_POSTGRES_URL",
                        database.name
                    );
                }
            }
        }
        for redis in &self.redis {
            match &redis.container_id {
                Some(container) => {
                    let short = &container[..container.len().min(12)];
                    let _ = writeln!(out, "Redis (database {}):", redis.db);
                    let _ = writeln!(out, "  docker exec {tty}{short} redis-cli -n {}", redis.db);
                    let _ = writeln!(
                        out,
                        "  then, for example: INFO clients · INFO memory · INFO commandstats · SLOWLOG GET 10 · CLIENT LIST · DBSIZE"
                    );
                    let _ = writeln!(
                        out,
                        "  docker exec {tty}{short} redis-cli -n {} MONITOR   (every command, live)",
                        redis.db
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "Redis database {} on the server in DEBUGLAB_REDIS_URL",
                        redis.db
                    );
                }
            }
        }
        out
    }
}

/// What an engineer asks PostgreSQL first.
const POSTGRES_QUERIES: [&str; 4] = [
    "SELECT pid, state, wait_event, now() - xact_start AS xact_age, left(query, 60) FROM pg_stat_activity WHERE datname = current_database();",
    "SELECT locktype, relation::regclass, mode, granted FROM pg_locks WHERE NOT granted;",
    "SELECT calls, round(mean_exec_time::numeric, 2) AS mean_ms, shared_blks_hit + shared_blks_read AS buffers, left(query, 60) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5;",
    "EXPLAIN (ANALYZE, BUFFERS) <a query from pg_stat_statements, with a value for $1>;",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Kept {
        Kept {
            postgres: vec![KeptDatabase {
                container_id: Some("0123456789abcdef".into()),
                name: "debuglab_x".into(),
            }],
            redis: vec![KeptRedis {
                container_id: None,
                db: 3,
            }],
        }
    }

    #[test]
    fn commands_use_a_terminal_only_when_there_is_one() {
        let text = kept().commands(true);
        assert!(
            text.contains("docker exec -it 0123456789ab psql -U postgres -d debuglab_x"),
            "{text}"
        );
        let text = kept().commands(false);
        assert!(
            text.contains("docker exec 0123456789ab psql -U postgres -d debuglab_x"),
            "{text}"
        );
        assert!(text.contains("Redis database 3 on the server in DEBUGLAB_REDIS_URL"));
    }
}
