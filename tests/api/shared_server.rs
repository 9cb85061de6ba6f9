//! `scripts/test.sh` shares a PostgreSQL server politely: a run holds a
//! session named after it while it lives, drops at start the databases of
//! runs that are over (and only those) and its own at the end
//! (`scripts/test-dbs.sh`, run here as test.sh runs it).

use std::time::Duration;

use crate::helpers::*;
use crate::wait::wait_until;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use uuid::Uuid;

/// Run `body` in bash with scripts/test-dbs.sh sourced and the admin URL as
/// `$1`, `args` after it; its stdout.
async fn test_dbs(body: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(". scripts/test-dbs.sh\n{body}"))
        .arg("test-dbs")
        .arg(admin_url())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{body}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn admin() -> PgConnection {
    let opts: PgConnectOptions = admin_url().parse().unwrap();
    opts.database("postgres").connect().await.unwrap()
}

async fn exists(db: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

async fn sessions_named(db: &mut PgConnection, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(name)
        .fetch_one(db)
        .await
        .unwrap()
}

/// A run id of test.sh's shape (`k` and digits) that no real run has.
fn fake_run_id() -> String {
    format!("k9{}", Uuid::new_v4().as_u128() % 10u128.pow(15))
}

#[tokio::test]
async fn only_the_databases_of_finished_runs_are_dropped() {
    which_psql();
    let mut db = admin().await;
    let (dead, live) = (fake_run_id(), fake_run_id());
    let name = |run: &str| format!("authtest_{run}_{}", Uuid::new_v4().simple());
    let dead_dbs = [name(&dead), name(&dead)];
    let live_db = name(&live);
    // An older test.sh named its databases authtest_r<digits>_<hex> and held
    // no session: a live run of it cannot be told from a finished one.
    let old_shape = format!(
        "authtest_r9{}_{}",
        Uuid::new_v4().as_u128() % 10u128.pow(15),
        Uuid::new_v4().simple()
    );
    for d in dead_dbs.iter().chain([&live_db, &old_shape]) {
        db.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {d}")))
            .await
            .unwrap();
    }
    // The live run's session, as start_run_keeper opens it.
    let keeper_name = format!("authtest_run:{live}");
    let opts: PgConnectOptions = admin_url().parse().unwrap();
    let keeper = opts
        .database("postgres")
        .application_name(&keeper_name)
        .connect()
        .await
        .unwrap();

    let said = test_dbs(r#"drop_dead_runs "$1""#, &[]).await;
    let dropped: u32 = said
        .split("finished runs: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of dropped databases in {said:?}"));
    assert!(dropped >= 2, "both databases of the finished run: {said}");
    for d in &dead_dbs {
        assert!(
            !exists(&mut db, d).await,
            "{d} of a finished run is dropped"
        );
    }
    assert!(
        exists(&mut db, &live_db).await,
        "a live run's database is kept"
    );
    assert!(
        exists(&mut db, &old_shape).await,
        "other shapes are left alone"
    );

    // The run ends: its databases go at the next start.
    keeper.close().await.unwrap();
    wait_until(
        "the keeper session to end",
        Duration::from_secs(10),
        async || sessions_named(&mut db, &keeper_name).await == 0,
    )
    .await;
    test_dbs(r#"drop_dead_runs "$1""#, &[]).await;
    assert!(
        !exists(&mut db, &live_db).await,
        "dropped once its run is over"
    );
    assert!(exists(&mut db, &old_shape).await);
    db.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {old_shape}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_run_is_seen_alive_while_it_runs_and_leaves_no_database_behind() {
    which_psql();
    let mut db = admin().await;
    let run = fake_run_id();
    let keeper_name = format!("authtest_run:{run}");
    // The keeper shows while the script runs; its own databases are dropped.
    let said = test_dbs(
        r#"start_run_keeper "$1" "$2"
psql "$1" -XAtqc "select count(*) from pg_stat_activity where application_name = 'authtest_run:$2'"
psql "$1" -Xqc "create database authtest_$2_0123456789abcdef0123456789abcdef"
psql "$1" -Xqc "create database authtest_$2_fedcba9876543210fedcba9876543210"
drop_run_databases "$1" "$2""#,
        &[&run],
    )
    .await;
    assert_eq!(said, "1\n0\n", "seen alive, then 0 databases left");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
        .bind(format!("authtest_{run}_%"))
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // The script is gone: so is its session.
    wait_until(
        "the run's session to end with it",
        Duration::from_secs(10),
        async || sessions_named(&mut db, &keeper_name).await == 0,
    )
    .await;
}

/// test.sh needs psql for this; so does CI.
fn which_psql() {
    let found = std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "psql is needed (apt-get install -y postgresql-client)"
    );
}
