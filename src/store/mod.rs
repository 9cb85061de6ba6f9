//! Every SQL statement of the service, one module per table.

pub mod gmail_token;
pub(crate) mod oauth_state;
pub mod passport_event;
pub(crate) mod webhook_outbox;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Open a pool without connecting yet (connections are made on first use).
pub(crate) fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(20)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
}

/// Parse a database URL into connect options.
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    PgConnectOptions::from_str(url)
}

/// Connect and run the embedded migrations.
pub async fn connect_and_migrate(url: &str) -> Result<PgPool, sqlx::Error> {
    let pool = pool_options().connect_with(connect_options(url)?).await?;
    // Migrations only ever add; an older binary (a rollback) must still start
    // on a database a newer one has migrated.
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(&pool).await?;
    Ok(pool)
}

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
    let opts = connect_options(url)?;
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
