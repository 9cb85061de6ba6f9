//! Adopting the old service's `gmail_token` table, whatever shape it was
//! left in: before the migrations run, [`adopt`] reads the live table
//! ([`inspect`], [`facts`]), decides ([`plan::plan`], pure) and applies the
//! plan in one transaction, or refuses with every reason at once.
//! [`preview`] does the reading and deciding only (`migrate --plan`).

pub mod plan;
pub mod preview;
pub mod shape;

use sqlx::{Acquire, PgConnection};

pub use plan::{Plan, Problem, Refusal, Step, Touches};
pub use preview::Preview;
pub use shape::{Check, Column, Dependent, Facts, Kind, Offenders, Shape, UniqueIndex};

/// Key of the advisory lock that lets one instance adopt at a time.
const ADOPT_LOCK: i64 = 0x6175_7468_6164_6f70; // "authadop"

/// How many offending rows a refusal names.
const FIRST_OFFENDERS: i64 = 5;

/// How long the adoption waits for its lock on `gmail_token` before it
/// gives up (nothing changed): a reader idle in a transaction would
/// otherwise hold the ALTERs, and every query queued behind them, forever.
pub const LOCK_TIMEOUT: &str = "5s";

/// Why the start stops before the migrations.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Locked(Locked),
}

/// Other sessions held `gmail_token` longer than [`LOCK_TIMEOUT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub blockers: Vec<Blocker>,
}

/// A session holding a lock on `gmail_token` (from `pg_stat_activity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub pid: i32,
    pub application_name: String,
    /// `local` for a Unix socket.
    pub client_addr: String,
    pub state: String,
    pub xact_start: Option<String>,
}

impl std::fmt::Display for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "gmail_token is locked by other sessions: the adoption waited {LOCK_TIMEOUT} for its lock and gave up; nothing was changed."
        )?;
        if self.blockers.is_empty() {
            writeln!(f, "  (the sessions holding it have ended since)")?;
        }
        for b in &self.blockers {
            writeln!(
                f,
                "  - pid {}, application_name {:?}, client {}, state {:?}, transaction started {}",
                b.pid,
                b.application_name,
                plan::printable(&b.client_addr),
                b.state,
                plan::printable(b.xact_start.as_deref().unwrap_or("-"))
            )?;
        }
        write!(
            f,
            "fix: end those sessions (commit or roll back their transactions, stop the old service, or SELECT pg_terminate_backend(pid)), then start again"
        )
    }
}

/// Give the live table the service's shape, in one transaction, or refuse
/// (nothing changed). Returns the steps applied: none when the table has
/// the service's shape already or does not exist. Another session holding
/// the table longer than [`LOCK_TIMEOUT`] stops it, with their names.
pub async fn adopt(conn: &mut PgConnection) -> Result<Plan, AdoptError> {
    match adopt_in_transaction(conn).await {
        Err(AdoptError::Database(e)) if is_lock_timeout(&e) => Err(AdoptError::Locked(Locked {
            blockers: blockers(conn).await?,
        })),
        other => other,
    }
}

fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

/// The sessions holding a lock on `gmail_token` now (the transaction that
/// waited has ended, so `pg_blocking_pids` has nobody to ask about: a
/// granted lock on the table is what stopped the ACCESS EXCLUSIVE one).
async fn blockers(conn: &mut PgConnection) -> Result<Vec<Blocker>, sqlx::Error> {
    let rows: Vec<(i32, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
                coalesce(a.state, ''), a.xact_start::text
         FROM pg_stat_activity a
         WHERE a.pid <> pg_backend_pid() AND a.pid IN (
             SELECT l.pid FROM pg_locks l
             WHERE l.locktype = 'relation' AND l.granted
               AND l.relation = to_regclass('gmail_token'))
         ORDER BY a.xact_start NULLS LAST, a.pid",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(pid, application_name, client_addr, state, xact_start)| Blocker {
                pid,
                application_name,
                client_addr,
                state,
                xact_start,
            },
        )
        .collect())
}

async fn adopt_in_transaction(conn: &mut PgConnection) -> Result<Plan, AdoptError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADOPT_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    )))
    .execute(&mut *tx)
    .await?;
    let Some(shape) = inspect(&mut tx).await? else {
        return Ok(Plan::default());
    };
    let facts = facts(&mut tx, &shape).await?;
    let plan = plan::plan(&shape, &facts)?;
    for step in &plan.steps {
        sqlx::query(sqlx::AssertSqlSafe(step.sql.clone()))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(plan)
}

/// [`preview`] on a connection of its own to `url`.
pub async fn preview_database(url: &str) -> Result<Preview, sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .connect()
        .await?;
    let preview = preview(&mut conn).await?;
    conn.close().await?;
    Ok(preview)
}

/// What `migrate` would do, read in a read-only transaction.
pub async fn preview(conn: &mut PgConnection) -> Result<Preview, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    let shape = inspect(&mut tx).await?;
    let outcome = match &shape {
        Some(s) => {
            let f = facts(&mut tx, s).await?;
            plan::plan(s, &f)
        }
        None => Ok(Plan::default()),
    };
    let pending = preview::pending(&applied_migrations(&mut tx).await?);
    tx.rollback().await?;
    Ok(Preview {
        shape,
        outcome,
        pending,
    })
}

/// Versions in `_sqlx_migrations` (none on a database never migrated).
async fn applied_migrations(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(conn)
        .await
}

/// The live table's columns, unique indexes and constraints; `None` when
/// there is no `gmail_token`.
pub async fn inspect(conn: &mut PgConnection) -> Result<Option<Shape>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('gmail_token') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    let columns = columns(conn).await?;
    let unique = unique_indexes(conn).await?;
    let constraints = sqlx::query_scalar(
        "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'gmail_token'::regclass AND contype NOT IN ('p', 'u')
         ORDER BY conname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let checks = checks(conn).await?;
    let dependents = dependents(conn).await?;
    let rows = sqlx::query_scalar("SELECT count(*) FROM gmail_token")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some(Shape {
        columns,
        unique,
        constraints,
        checks,
        rows,
        dependents,
    }))
}

async fn columns(conn: &mut PgConnection) -> Result<Vec<Column>, sqlx::Error> {
    let rows: Vec<(String, String, String, bool, Option<String>)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, a.attnotnull,
                CASE WHEN a.attidentity <> '' THEN 'generated as identity'
                     WHEN a.attgenerated <> '' THEN 'generated'
                     ELSE pg_get_expr(d.adbin, d.adrelid) END
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = 'gmail_token'::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, type_name, typname, not_null, default)| Column {
            name,
            type_name,
            kind: Kind::from_type_name(&typname),
            not_null,
            default,
        })
        .collect())
}

/// The CHECK constraints and the columns each uses.
async fn checks(conn: &mut PgConnection) -> Result<Vec<Check>, sqlx::Error> {
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT c.conname::text, pg_get_constraintdef(c.oid),
                ARRAY(SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) ORDER BY a.attnum)
         FROM pg_constraint c
         WHERE c.conrelid = 'gmail_token'::regclass AND c.contype = 'c'
         ORDER BY c.conname",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, definition, columns)| Check {
            name,
            definition,
            columns,
        })
        .collect())
}

/// Views (through their rules) and foreign keys (either side) that use a
/// column of the table.
async fn dependents(conn: &mut PgConnection) -> Result<Vec<Dependent>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT a.attname::text, 'view ' || r.ev_class::regclass::text
         FROM pg_depend d
         JOIN pg_rewrite r ON r.oid = d.objid
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'gmail_token'::regclass
           AND r.ev_class <> 'gmail_token'::regclass
         UNION
         SELECT a.attname::text, 'foreign key ' || c.conname || ' on ' || c.conrelid::regclass::text
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = 'gmail_token'::regclass AND a.attnum = ANY (
             CASE WHEN c.conrelid = 'gmail_token'::regclass THEN c.conkey ELSE c.confkey END)
         WHERE c.contype = 'f'
           AND 'gmail_token'::regclass IN (c.conrelid, c.confrelid)
         ORDER BY 1, 2",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(column, what)| Dependent { column, what })
        .collect())
}

async fn unique_indexes(conn: &mut PgConnection) -> Result<Vec<UniqueIndex>, sqlx::Error> {
    let rows: Vec<(String, bool, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisprimary, i.indpred IS NOT NULL, i.indexprs IS NOT NULL,
                ARRAY(SELECT a.attname::text
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.n)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'gmail_token'::regclass AND i.indisunique AND i.indisvalid
         ORDER BY c.relname",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, primary, partial, expression, columns)| UniqueIndex {
                name,
                primary,
                columns: if expression { Vec::new() } else { columns },
                partial,
            },
        )
        .collect())
}

/// What the rows hold, for the columns `shape` has. On the service's own
/// table (keys unique, columns NOT NULL, the status CHECK, recognised by
/// its definition) only blank identities are counted.
pub async fn facts(conn: &mut PgConnection, shape: &Shape) -> Result<Facts, sqlx::Error> {
    let mut f = Facts::default();
    if let Some(user_id) = shape.column("user_id") {
        user_id_facts(conn, shape, user_id, &mut f).await?;
    }
    for c in ["email", "google_sub"]
        .iter()
        .filter_map(|n| shape.column(n))
    {
        if c.kind.is_text() {
            let blank = count_where(conn, &format!("{} ~ '^\\s*$'", plan::ident(&c.name))).await?;
            f.blank.insert(c.name.clone(), blank);
        }
    }
    if let Some(status) = shape.column("status").filter(|c| c.kind.is_text()) {
        if !plan::has_status_check(shape) {
            f.bad_status = offenders(
                conn,
                "SELECT coalesce(user_id::text, 'NULL') || ' (' || quote_literal(status) || ')',
                        count(*) OVER () FROM gmail_token
                 WHERE status IS NOT NULL AND NOT status::text = ANY(string_to_array($2, ','))
                 ORDER BY 1 LIMIT $1",
                Some(&plan::STATUSES.join(",")),
            )
            .await?;
        }
        f.null_status = nulls(conn, status).await?;
    }
    if let Some(c) = shape.column("created_at") {
        f.null_created_at = nulls(conn, c).await?;
    }
    if let Some(c) = shape.column("updated_at") {
        f.null_updated_at = nulls(conn, c).await?;
    }
    for c in plan::text_time_columns(shape) {
        let n = plan::ident(&c.name);
        let bad = offenders(
            conn,
            format!(
                "SELECT coalesce(user_id::text, 'NULL') || ' (' || quote_literal({n}) || ')',
                        count(*) OVER () FROM gmail_token
                 WHERE btrim({n}) <> '' AND {n} !~* $2 ORDER BY 1 LIMIT $1"
            ),
            Some(plan::TIMESTAMP_PATTERN),
        )
        .await?;
        f.bad_times.insert(c.name.clone(), bad);
    }
    if let Some(src) = plan::expiry_source(shape).filter(|c| c.kind.is_time() || c.kind.is_text()) {
        let empty = if shape.column("expires_at").is_some() {
            "expires_at IS NULL AND "
        } else {
            ""
        };
        f.expiry_to_fill = count_where(conn, &format!("{empty}{} IS NOT NULL", src.name)).await?;
    }
    Ok(f)
}

/// NULL, non-UUID and duplicate user ids.
async fn user_id_facts(
    conn: &mut PgConnection,
    shape: &Shape,
    user_id: &Column,
    f: &mut Facts,
) -> Result<(), sqlx::Error> {
    f.null_user_ids = nulls(conn, user_id).await?;
    if user_id.kind.is_text() {
        f.not_uuid = offenders(
            conn,
            "SELECT user_id::text, count(*) OVER () FROM gmail_token
             WHERE user_id IS NOT NULL AND btrim(user_id::text) !~* $2 ORDER BY 1 LIMIT $1",
            Some(plan::UUID_PATTERN),
        )
        .await?;
    }
    // A unique uuid column has no duplicates.
    if user_id.kind != Kind::Uuid || !shape.user_id_is_unique() {
        f.duplicates = offenders(
            conn,
            "SELECT CASE WHEN k ~ '^[0-9a-f]{32}$' THEN k::uuid::text ELSE min(user_id::text) END,
                    count(*) OVER ()
             FROM (SELECT user_id, lower(replace(btrim(user_id::text), '-', '')) AS k
                   FROM gmail_token WHERE user_id IS NOT NULL) AS t
             GROUP BY k HAVING count(*) > 1
             ORDER BY 1 LIMIT $1",
            None,
        )
        .await?;
    }
    Ok(())
}

/// NULLs in one of the service's columns (none if it is NOT NULL).
async fn nulls(conn: &mut PgConnection, c: &Column) -> Result<i64, sqlx::Error> {
    if c.not_null {
        return Ok(0);
    }
    count_where(conn, &format!("{} IS NULL", plan::ident(&c.name))).await
}

/// Rows matching `condition`, built from the service's own column names.
async fn count_where(conn: &mut PgConnection, condition: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM gmail_token WHERE {condition}"
    )))
    .fetch_one(conn)
    .await
}

/// The first offending rows and their count, from a query returning
/// `(label, count(*) OVER ())` with `$1` the limit and `$2` the argument.
async fn offenders(
    conn: &mut PgConnection,
    sql: impl Into<String>,
    arg: Option<&str>,
) -> Result<Offenders, sqlx::Error> {
    // Built from the service's own column names only.
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.into())).bind(FIRST_OFFENDERS);
    if let Some(arg) = arg {
        query = query.bind(arg);
    }
    let rows: Vec<(String, i64)> = query.fetch_all(conn).await?;
    Ok(Offenders {
        count: rows.first().map_or(0, |r| r.1),
        first: rows.into_iter().map(|r| r.0).collect(),
    })
}
