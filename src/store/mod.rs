//! Every SQL statement of the service, one module per table.

pub mod gmail_token;
pub mod legacy;
pub(crate) mod oauth_state;
pub mod passport_event;
pub(crate) mod risc_event;
pub mod token_fetch_ledger;
pub mod token_reads;
pub(crate) mod webhook_outbox;

use crate::config::PoolSettings;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Pool options (connections are made on first use).
pub(crate) fn pool_options(s: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(0)
        .acquire_timeout(s.acquire_timeout)
}

/// Connect options for the pool: the URL with the statement and lock
/// timeouts set on every connection.
pub(crate) fn connect_options(
    url: &str,
    s: &PoolSettings,
) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.options([
        ("statement_timeout", millis(s.statement_timeout)),
        ("lock_timeout", millis(s.lock_timeout)),
    ]))
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Adopt the old service's table ([`legacy::adopt`]), apply the embedded
/// migrations, then open the pool. A table that cannot be adopted safely
/// stops here ([`legacy::AdoptError::Refused`]), before anything is served.
///
/// The migrations run on a connection of their own, without the pool's
/// timeouts: a migration may take longer than a request's statement, and it
/// waits for another instance that is migrating at the same time.
pub async fn connect_and_migrate(
    url: &str,
    s: &PoolSettings,
) -> Result<PgPool, legacy::AdoptError> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
    let adopted = legacy::adopt(&mut conn).await?;
    for step in &adopted.steps {
        tracing::info!(sql = %legacy::plan::printable(&step.sql), touches = ?step.touches, "adopted gmail_token");
    }
    // Migrations only ever add; an older binary (a rollback) must still start
    // on a database a newer one has migrated.
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(&mut conn).await.map_err(sqlx::Error::from)?;
    conn.close().await?;
    Ok(pool_options(s)
        .connect_with(connect_options(url, s)?)
        .await?)
}

/// Does `e` mean that the database cannot do the work now (and a retry
/// later may succeed), rather than a bug? No connection within the acquire
/// timeout, a broken or refused connection, the statement or lock timeout, a
/// server shutting down, starting up or out of connections.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exceptions.
            code.starts_with("08") || UNAVAILABLE_SQLSTATES.contains(&code.as_ref())
        }),
        _ => false,
    }
}

/// SQLSTATEs of a database that cannot work now.
const UNAVAILABLE_SQLSTATES: &[&str] = &[
    "57014", // query_canceled: statement_timeout
    "55P03", // lock_not_available: lock_timeout
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now: starting up
    "53300", // too_many_connections
];

/// Is the database reachable and are all embedded migrations applied?
pub(crate) async fn ready(pool: &PgPool) -> bool {
    // `_sqlx_migrations` belongs to sqlx, not to our schema: a plain query.
    let applied: Result<i64, _> =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await;
    matches!(applied, Ok(n) if n >= MIGRATOR.iter().count() as i64)
}

/// Create a database on the server of `url` if it does not exist yet (the
/// demo uses this so that a newcomer needs no manual step).
pub(crate) async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    let opts = PgConnectOptions::from_str(url)?;
    let name = opts.get_database().unwrap_or("postgres").to_string();
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(sqlx::Error::Configuration(
            "database name may only hold letters, digits and `_`".into(),
        ));
    }
    let mut admin = opts.clone().database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "e!""#,
        name
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // The name was checked above: letters, digits and `_` only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

/// Key of the advisory lock that lets one instance sweep at a time.
const SWEEP_LOCK: i64 = 0x6175_7468_7377_6570; // "authswep"

/// Try to become the sweeper; the lock lives as long as this connection.
pub(crate) async fn try_sweep_lock(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "locked!""#,
        SWEEP_LOCK
    )
    .fetch_one(conn)
    .await
}

pub(crate) async fn sweep_unlock(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#,
        SWEEP_LOCK
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_cannot_work_now_is_told_from_a_bug() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            io.into(),
        ] {
            assert!(is_unavailable(&e), "{e}");
        }
        let bugs = [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("unexpected message".into()),
            sqlx::Error::ColumnNotFound("email".into()),
        ];
        for e in bugs {
            assert!(!is_unavailable(&e), "{e}");
        }
    }

    #[test]
    fn every_connection_carries_the_statement_and_lock_timeouts() {
        let opts = connect_options("postgres://u@db/x", &PoolSettings::default()).unwrap();
        assert_eq!(
            opts.get_options(),
            Some("-c statement_timeout=2500ms -c lock_timeout=2000ms")
        );
    }
}
