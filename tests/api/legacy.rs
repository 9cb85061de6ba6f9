//! The migration adopts the old service's `gmail_token` table.

use crate::helpers::*;
use auth_server::store::MIGRATOR;
use sqlx::Executor;
use uuid::Uuid;

#[tokio::test]
async fn migrations_adopt_the_old_table_and_its_rows_report_calendar_missing() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The table as the old Python service created it.
    pool.execute(
        "CREATE TABLE gmail_token (user_id uuid PRIMARY KEY, access_token text, refresh_token text, scopes jsonb)",
    )
    .await
    .unwrap();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let gmail = serde_json::json!([
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile"
    ]);
    // The old service sometimes stored the scope string as Google sent it.
    let gmail_string = serde_json::json!(
        "https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/gmail.readonly"
    );
    for (user, at, rt, scopes) in [
        (a, "ya29.legacy-a", "1//legacy-a", &gmail),
        (b, "ya29.legacy-b", "1//legacy-b", &gmail_string),
    ] {
        sqlx::query("INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes) VALUES ($1, $2, $3, $4)")
            .bind(user)
            .bind(at)
            .bind(rt)
            .bind(scopes)
            .execute(&pool)
            .await
            .unwrap();
    }
    let before: Vec<(Uuid, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT user_id, access_token, refresh_token, scopes FROM gmail_token ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    MIGRATOR
        .run(&pool)
        .await
        .expect("migrations adopt the table");
    MIGRATOR.run(&pool).await.expect("and are idempotent");

    let after: Vec<(Uuid, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT user_id, access_token, refresh_token, scopes FROM gmail_token ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(before, after, "existing data is untouched");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM gmail_token")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(statuses, ["active", "active"]);
    pool.close().await;

    // The service on that database reports Calendar missing for both.
    let app = TestApp::spawn_on(url, &[]).await;
    for user in [a, b] {
        let status: serde_json::Value = app
            .browser(Some(user))
            .get("/api/passport/gmail")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["connected"], true);
        assert_eq!(status["needs_reauth"], true);
        let missing: Vec<String> =
            serde_json::from_value(status["missing_scopes"].clone()).unwrap();
        assert!(
            missing.contains(&"calendar".into()) && missing.contains(&"calendar.events".into()),
            "{missing:?}"
        );
        assert!(status["email"].is_null(), "the old table had no email");
    }

    // And a legacy user can upgrade: the old refresh token is replaced.
    let landed = app.browser(Some(a)).reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let row = app.row(a).await.unwrap();
    assert_eq!(row.email.as_deref(), Some(JISOO));
    assert_ne!(app.refresh_of(a).await.as_deref(), Some("1//legacy-a"));
    assert!(
        row.refresh_token.as_deref().unwrap().starts_with("enc:v1:"),
        "encrypted on its next write"
    );
}

// ---------------------------------------------------------------------------
// Adoption of the shapes the old service may have left (store::legacy).

const SEND: &str = "https://www.googleapis.com/auth/gmail.send";
const READ: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// What an old reader runs.
const OLD_READER: &str =
    "SELECT user_id, access_token, refresh_token, scopes FROM gmail_token WHERE user_id = ";

type ReaderRow = (Uuid, String, Option<String>, serde_json::Value);

/// A fresh database holding `sql` (the old table and its rows); `{A}`,
/// `{B}`, `{A_RAW}`, `{B_RAW}` become the users' ids (the RAW ones upper
/// case, without hyphens). User A's token is valid for an hour and covers
/// gmail.send; B's expired an hour ago.
async fn legacy_database(sql: &str) -> (String, Uuid, Uuid) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let raw = |u: Uuid| u.simple().to_string().to_uppercase();
    let sql = sql
        .replace("{A_RAW}", &raw(a))
        .replace("{B_RAW}", &raw(b))
        .replace("{A}", &a.to_string())
        .replace("{B}", &b.to_string())
        .replace("{SEND}", SEND)
        .replace("{READ}", READ);
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .expect("the fixture loads");
    pool.close().await;
    (url, a, b)
}

/// An old reader's queries for `user`: with a literal, with a text bind
/// parameter (sqlx binding a `String`) and as a prepared statement taking
/// `text`. Each returns the row, with `access`.
async fn old_readers_see(url: &str, user: Uuid, access: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let literal: Vec<ReaderRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{OLD_READER}'{user}'")))
            .fetch_all(&mut conn)
            .await
            .expect("a literal");
    let bound: Vec<ReaderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{OLD_READER}$1")))
        .bind(user.to_string())
        .fetch_all(&mut conn)
        .await
        .expect("a text parameter");
    // `<>` with a text parameter, either way round, and its negation.
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM gmail_token WHERE user_id <> $1 AND $1 <> user_id AND NOT (user_id = $1)",
    )
    .bind(user.to_string())
    .fetch_one(&mut conn)
    .await
    .expect("uuid <> text");
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM gmail_token")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(others, all - 1, "{user}");
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PREPARE old_reader(text) AS {OLD_READER}$1"
    )))
    .await
    .expect("a prepared statement taking text");
    let prepared: Vec<ReaderRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXECUTE old_reader('{user}')")))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for rows in [literal, bound, prepared] {
        assert_eq!(rows.len(), 1, "{user}");
        assert_eq!((rows[0].0, rows[0].1.as_str()), (user, access));
    }
    conn.close().await.unwrap();
}

/// The service on an adopted table: the status API and the token API answer
/// (no 5xx), old readers read, and user A completes 재인증.
async fn serve_adopted(url: String, a: Uuid, b: Uuid) -> TestApp {
    // The sweep off: it would refresh rows the old service created long ago
    // (fixture 5) while this test reads their stored tokens.
    let app = TestApp::spawn_on(
        url,
        &[
            ("ALLOW_PLAINTEXT_TOKENS", "true"),
            ("SWEEP_AFTER_SECS", "0"),
        ],
    )
    .await;
    // A's tokens are Google's (the service checks an adopted scope list with
    // Google at first use); B's are no longer known to Google.
    app.fake
        .adopt_grant(JISOO, &[SEND, READ], "ya29.legacy-a", "1//legacy-a")
        .expect("a known account");
    for user in [a, b] {
        let resp = app.browser(Some(user)).get("/api/passport/gmail").await;
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        let status: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status["connected"], true, "{status}");
        assert_eq!(
            status["needs_reauth"], true,
            "calendar is missing: {status}"
        );
    }
    let (code, body, _) = app.token(a, &["gmail.send"]).await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["access_token"], "ya29.legacy-a", "stored, still valid");
    let (code, body, _) = app.token(b, &["gmail.send"]).await;
    assert!(
        code.is_client_error(),
        "expired; Google refuses the old refresh token: {code} {body}"
    );
    old_readers_see(&app.database_url, a, "ya29.legacy-a").await;
    old_readers_see(&app.database_url, b, "ya29.legacy-b").await;

    let landed = app.browser(Some(a)).reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded", "{landed}");
    let (code, body, _) = app.token(a, &["calendar.events"]).await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap();
    old_readers_see(&app.database_url, a, fresh).await;
    app
}

/// A user the old service never saw connects: the service's insert works
/// on the adopted table.
async fn a_new_user_connects(app: &TestApp) -> Uuid {
    let c = Uuid::new_v4();
    let landed = app.browser(Some(c)).reauth(None, MINHO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "connected", "{landed}");
    c
}

#[tokio::test]
async fn a_varchar_user_id_and_naive_token_expiry_are_adopted_even_in_another_time_zone() {
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             user_id varchar(36) PRIMARY KEY,
             access_token varchar(2048) NOT NULL,
             refresh_token varchar(512),
             scopes jsonb,
             token_expiry timestamp NOT NULL,
             created_at timestamp DEFAULT now(),
             updated_at timestamp);
         INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes, token_expiry) VALUES
           ('{A}', 'ya29.legacy-a', '1//legacy-a', '[\"{SEND}\", \"{READ}\"]',
            (now() AT TIME ZONE 'UTC') + interval '1 hour'),
           ('{B}', 'ya29.legacy-b', '1//legacy-b', '\"{SEND} {READ}\"',
            (now() AT TIME ZONE 'UTC') - interval '1 hour');",
    )
    .await;
    // The naive values are UTC whatever the session's time zone is.
    let seoul = format!("{url}?options=-c%20TimeZone%3DAsia%2FSeoul");
    let app = serve_adopted(seoul, a, b).await;
    let old_type: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'gmail_token'::regclass AND attname = 'token_expiry'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        old_type, "timestamp without time zone",
        "the old column stays"
    );
    let b_expires_in: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM gmail_token WHERE user_id = $1",
    )
    .bind(b)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        (-3700.0..-3500.0).contains(&b_expires_in),
        "an hour ago, read as UTC: {b_expires_in}"
    );
    a_new_user_connects(&app).await;

    // Old readers' `user_id = $1` (text) uses the primary key's index, and a
    // literal still compares uuid with uuid.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let plan = |sql: String| sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for set in [
        "SET enable_seqscan = off",
        "SET plan_cache_mode = force_generic_plan",
    ] {
        conn.execute(set).await.unwrap();
    }
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PREPARE q(text) AS {OLD_READER}$1"
    )))
    .await
    .unwrap();
    let generic = plan(format!("EXPLAIN EXECUTE q('{b}')"))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .join("\n");
    assert!(
        generic.contains("Index Scan using gmail_token_pkey"),
        "{generic}"
    );
    assert!(generic.contains("(user_id = ($1)::uuid)"), "{generic}");
    let literal = plan(format!("EXPLAIN VERBOSE {OLD_READER}'{b}'"))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .join("\n");
    assert!(literal.contains(&format!("= '{b}'::uuid)")), "{literal}");
    assert!(
        literal.contains("Index Scan using gmail_token_pkey"),
        "{literal}"
    );
}

#[tokio::test]
async fn a_text_user_id_beside_a_serial_key_with_space_separated_scopes_is_adopted() {
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             id serial PRIMARY KEY,
             user_id text NOT NULL UNIQUE,
             email varchar(320),
             access_token text,
             refresh_token text,
             scopes text,
             expiry timestamptz,
             status varchar(32),
             created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes, expiry, status) VALUES
           ('{A}', 'ya29.legacy-a', '1//legacy-a', '{SEND} {READ}', now() + interval '1 hour', 'active'),
           ('  {B_RAW} ', 'ya29.legacy-b', '1//legacy-b', '{SEND}', now() - interval '1 hour', NULL);",
    )
    .await;
    let app = serve_adopted(url, a, b).await;
    let scopes: serde_json::Value =
        sqlx::query_scalar("SELECT scopes FROM gmail_token WHERE user_id = $1")
            .bind(b)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(scopes, serde_json::json!([SEND]), "a jsonb array now");
    let c = a_new_user_connects(&app).await;
    let ids: Vec<(Uuid, i32)> = sqlx::query_as("SELECT user_id, id FROM gmail_token ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!((ids[0].0, ids[0].1), (a, 1), "the serial key stays");
    assert_eq!((ids[1].0, ids[1].1), (b, 2));
    assert_eq!(ids[2].0, c, "and numbers the new row: {ids:?}");
}

#[tokio::test]
async fn a_bigserial_key_without_unique_user_id_text_array_scopes_and_unknown_not_null_columns_are_adopted(
) {
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             id bigserial PRIMARY KEY,
             user_id uuid NOT NULL,
             access_token text NOT NULL,
             refresh_token text,
             scopes text[],
             expires_at timestamp,
             provider text NOT NULL DEFAULT 'google',
             legacy_note text NOT NULL);
         INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes, expires_at, legacy_note) VALUES
           ('{A}', 'ya29.legacy-a', '1//legacy-a', ARRAY['{SEND}', '{READ}'],
            (now() AT TIME ZONE 'UTC') + interval '1 hour', 'v1'),
           ('{B}', 'ya29.legacy-b', '1//legacy-b', ARRAY['{SEND}'],
            (now() AT TIME ZONE 'UTC') - interval '1 hour', 'v1');",
    )
    .await;
    let app = serve_adopted(url, a, b).await;
    let c = a_new_user_connects(&app).await;
    let (provider, note): (String, Option<String>) =
        sqlx::query_as("SELECT provider, legacy_note FROM gmail_token WHERE user_id = $1")
            .bind(c)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((provider.as_str(), note), ("google", None));
    let kept: String = sqlx::query_scalar("SELECT legacy_note FROM gmail_token WHERE user_id = $1")
        .bind(b)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(kept, "v1", "unknown columns are left alone");
}

#[tokio::test]
async fn an_identity_key_char_user_id_json_scopes_text_timestamps_and_a_nullable_status_are_adopted(
) {
    // Timestamps kept as text, as Python's isoformat() writes them: naive
    // (UTC), with an offset, or blank.
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             user_id char(36) UNIQUE,
             email text,
             access_token text,
             refresh_token text,
             scopes json,
             token_expiry varchar(40),
             status text DEFAULT 'active',
             created_at text NOT NULL DEFAULT '',
             updated_at timestamptz DEFAULT now());
         INSERT INTO gmail_token (user_id, email, access_token, refresh_token, scopes, token_expiry, created_at) VALUES
           ('{A}', 'jisoo@example.com', 'ya29.legacy-a', '1//legacy-a', '[\"{SEND}\", \"{READ}\"]',
            to_char((now() AT TIME ZONE 'UTC') + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),
            '2025-01-02T03:04:05'),
           ('{B}', NULL, 'ya29.legacy-b', '1//legacy-b', '\"{SEND} {READ}\"',
            (now() - interval '1 hour')::text, ' ');",
    )
    .await;
    let app = serve_adopted(url, a, b).await;
    a_new_user_connects(&app).await;
    let scopes: serde_json::Value =
        sqlx::query_scalar("SELECT scopes FROM gmail_token WHERE user_id = $1")
            .bind(b)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        scopes,
        serde_json::json!(format!("{SEND} {READ}")),
        "a JSON string stays a string (the service reads both)"
    );
    let created: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM gmail_token
         WHERE user_id IN ($1, $2) ORDER BY user_id = $1 DESC",
    )
    .bind(a)
    .bind(b)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        created[0].as_deref(),
        Some("2025-01-02 03:04:05"),
        "naive text is UTC"
    );
    assert!(created[1].is_some(), "blank became now()");
}

/// The table's schema, indexes, constraints and rows, the database's
/// tables and its `uuid = text` operators, as text: to prove nothing changed.
async fn schema_and_data(url: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT format('%s %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull,
                       pg_get_expr(adbin, adrelid))
         FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
         WHERE attrelid = 'gmail_token'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'gmail_token'::regclass ORDER BY 1",
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'gmail_token'::regclass ORDER BY 1",
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        "SELECT oprname::text FROM pg_operator WHERE oprleft = 'uuid'::regtype AND oprright = 'text'::regtype",
        "SELECT row_to_json(t)::text FROM gmail_token t ORDER BY 1",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        out.push(rows.join("\n"));
    }
    pool.close().await;
    out
}

/// Run `auth-server <args>` against `url`.
async fn cli(app: &TestApp, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = crate::doctor::cli_command(app, args, &[("DATABASE_URL", url.to_string())])
        .output()
        .await
        .expect("run auth-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_table_that_cannot_be_adopted_stops_the_start_names_the_rows_and_changes_nothing() {
    let (url, a, _) = legacy_database(
        "CREATE TABLE gmail_token (
             id serial PRIMARY KEY,
             user_id varchar(64),
             access_token text,
             scopes integer,
             expires_at text,
             status text);
         INSERT INTO gmail_token (user_id, access_token, scopes, expires_at, status)
           SELECT 'user-' || n, 't', 1, 'soon', 'active' FROM generate_series(1, 6) AS n;
         INSERT INTO gmail_token (user_id, access_token, scopes, expires_at, status) VALUES
           ('{A}', 't', 1, 'tomorrow', 'expired'),
           ('{A_RAW}', 't', 1, 'tomorrow', 'active'),
           (NULL, 't', 1, 'tomorrow', 'active');",
    )
    .await;
    let before = schema_and_data(&url).await;

    // In process: every problem at once, with the rows.
    let settings = auth_server::config::PoolSettings::default();
    let err = auth_server::store::connect_and_migrate(&url, &settings)
        .await
        .expect_err("refused");
    let auth_server::store::legacy::AdoptError::Refused(refusal) = err else {
        panic!("refused, not {err}");
    };
    let columns: Vec<&str> = refusal.problems.iter().map(|p| p.column.as_str()).collect();
    assert_eq!(
        columns,
        [
            "user_id",
            "user_id",
            "user_id",
            "expires_at",
            "scopes",
            "status"
        ],
        "{refusal}"
    );
    let text = refusal.to_string();
    for expected in [
        "1 row(s) have no user_id (NULL)".to_string(),
        format!("1 user has ({a}) more than one row"),
        "6 values are (first 5: user-1, user-2, user-3, user-4, user-5) not a UUID".into(),
        "expires_at: is text, and 9 values are (first 5: ".into(),
        "('soon')) not an ISO 8601 timestamp".into(),
        "scopes: is integer, which the service cannot read as jsonb".into(),
        format!("1 row has ({a} ('expired')) a status the service does not know"),
    ] {
        assert!(text.contains(&expected), "{expected}\nin\n{text}");
    }

    // The real binary: `serve` stops before listening (its /readyz never
    // answers) and exits non-zero with the same message.
    let other = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = crate::doctor::cli_command(
        &other,
        &["serve"],
        &[
            ("DATABASE_URL", url.clone()),
            ("BIND_ADDR", bind.clone()),
            ("PUBLIC_BASE_URL", format!("http://{bind}")),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let client = reqwest::Client::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let ready = client.get(format!("http://{bind}/readyz")).send().await;
        assert!(ready.is_err(), "/readyz answered: {ready:?}");
        assert!(tokio::time::Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "serve exits non-zero");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains(&text), "{stderr}");

    // `migrate` fails the same way; `migrate --plan` prints it and fails.
    let (ok, _, stderr) = cli(&other, &url, &["migrate"]).await;
    assert!(!ok && stderr.contains(&text), "{stderr}");
    let (ok, stdout, _) = cli(&other, &url, &["migrate", "--plan"]).await;
    assert!(!ok, "{stdout}");
    assert!(stdout.starts_with("gmail_token: 9 rows\n"), "{stdout}");
    assert!(stdout.contains(&text), "{stdout}");

    assert_eq!(schema_and_data(&url).await, before, "nothing changed");
}

#[tokio::test]
async fn migrate_plan_prints_the_shape_and_every_statement_and_changes_nothing() {
    let (url, _, _) = legacy_database(
        "CREATE TABLE gmail_token (
             id serial PRIMARY KEY,
             user_id varchar(36) NOT NULL UNIQUE,
             access_token text NOT NULL,
             refresh_token text,
             scopes text,
             token_expiry timestamp,
             status varchar(32));
         INSERT INTO gmail_token (user_id, access_token, scopes, token_expiry, status) VALUES
           ('{A}', 'ya29.legacy-a', '{SEND} {READ}', now() AT TIME ZONE 'UTC', 'active'),
           ('{B}', 'ya29.legacy-b', '{SEND}', NULL, NULL);",
    )
    .await;
    let before = schema_and_data(&url).await;
    let other = TestApp::spawn().await;
    let (ok, plan, stderr) = cli(&other, &url, &["migrate", "--plan"]).await;
    assert!(ok, "{plan}{stderr}");
    assert_eq!(schema_and_data(&url).await, before, "nothing changed");
    let migrations = MIGRATOR.iter().count();
    for expected in [
        "gmail_token: 2 rows\n  columns:\n".to_string(),
        "    user_id        character varying(36) NOT NULL\n".into(),
        "  PRIMARY KEY (id)  [gmail_token_pkey]\n  UNIQUE (user_id)  [gmail_token_user_id_key]\n".into(),
        "   1. ALTER TABLE gmail_token ALTER COLUMN user_id TYPE uuid USING btrim(user_id)::uuid  [rewrites 2 rows]\n".into(),
        "UPDATE gmail_token SET expires_at = token_expiry AT TIME ZONE 'UTC' WHERE expires_at IS NULL AND token_expiry IS NOT NULL  [updates 1 row]\n".into(),
        "UPDATE gmail_token SET status = 'active' WHERE status IS NULL  [updates 1 row]\n".into(),
        format!("pending migrations ({migrations}):\n  20261127000001 gmail token\n    CREATE TABLE IF NOT EXISTS gmail_token ( user_id uuid PRIMARY KEY )\n"),
    ] {
        assert!(plan.contains(&expected), "{expected}\nin\n{plan}");
    }

    let (ok, _, stderr) = cli(&other, &url, &["migrate"]).await;
    assert!(ok, "{stderr}");
    let (ok, again, _) = cli(&other, &url, &["migrate", "--plan"]).await;
    assert!(ok);
    assert!(
        again.ends_with("adoption: nothing to do (the table has the service's shape, or is absent)\npending migrations: none\n"),
        "{again}"
    );
    assert!(
        again.contains("    user_id                uuid NOT NULL\n"),
        "{again}"
    );
}

#[tokio::test]
async fn the_adoption_is_a_no_op_on_the_services_own_table_and_on_an_empty_database() {
    let url = fresh_database().await;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let plan = auth_server::store::legacy::adopt(&mut conn).await.unwrap();
    assert!(plan.steps.is_empty(), "{plan:?}");
    MIGRATOR.run(&mut conn).await.unwrap();
    let before = schema_and_data(&url).await;
    let plan = auth_server::store::legacy::adopt(&mut conn).await.unwrap();
    assert!(plan.steps.is_empty(), "{plan:?}");
    assert_eq!(schema_and_data(&url).await, before);
}

#[tokio::test]
async fn a_varchar_table_migrated_by_a_release_that_did_not_adopt_it_is_repaired() {
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             user_id varchar(36) PRIMARY KEY,
             access_token text,
             refresh_token text,
             scopes jsonb,
             expires_at timestamptz);
         INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes, expires_at) VALUES
           ('{A}', 'ya29.legacy-a', '1//legacy-a', '[\"{SEND}\"]', now() + interval '1 hour'),
           ('{B}', 'ya29.legacy-b', '1//legacy-b', '[\"{SEND}\"]', now() - interval '1 hour');",
    )
    .await;
    // What an earlier release did: the migrations alone, which add the
    // service's columns, the CHECK and the NOTIFY trigger around a varchar key.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    let key: String = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns
         WHERE table_name = 'gmail_token' AND column_name = 'user_id'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(key, "character varying");
    pool.close().await;
    let app = serve_adopted(url, a, b).await;
    a_new_user_connects(&app).await;
}

#[tokio::test]
async fn a_view_on_a_column_whose_type_must_change_is_named_before_anything_changes() {
    let (url, _, _) = legacy_database(
        "CREATE TABLE gmail_token (user_id varchar(36) PRIMARY KEY, access_token text);
         INSERT INTO gmail_token VALUES ('{A}', 'ya29.legacy-a');
         CREATE VIEW old_tokens AS SELECT user_id, access_token FROM gmail_token;",
    )
    .await;
    let before = schema_and_data(&url).await;
    let settings = auth_server::config::PoolSettings::default();
    let err = auth_server::store::connect_and_migrate(&url, &settings)
        .await
        .expect_err("refused");
    let auth_server::store::legacy::AdoptError::Refused(refusal) = err else {
        panic!("refused, not {err}");
    };
    assert_eq!(refusal.problems.len(), 1, "{refusal}");
    assert!(
        refusal.problems[0]
            .what
            .contains("its type must change, and view old_tokens uses it"),
        "{refusal}"
    );
    assert_eq!(schema_and_data(&url).await, before);
}

#[tokio::test]
async fn an_old_unnamed_status_check_and_checks_on_the_services_columns_are_replaced() {
    // `status text CHECK (…)` is named gmail_token_status_check, like the
    // service's own; it forbids reauth_required.
    let (url, a, b) = legacy_database(
        "CREATE TABLE gmail_token (
             user_id uuid PRIMARY KEY,
             email text,
             google_sub text,
             access_token text,
             refresh_token text CHECK (refresh_token IS NOT NULL),
             scopes jsonb,
             expires_at timestamptz,
             status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired')),
             provider text CHECK (provider = 'google'));
         INSERT INTO gmail_token (user_id, email, google_sub, access_token, refresh_token, scopes, expires_at, status) VALUES
           ('{A}', NULL, NULL, 'ya29.legacy-a', '1//legacy-a', '[\"{SEND}\", \"{READ}\"]', now() + interval '1 hour', 'active'),
           ('{B}', ' ', E'\\t', 'ya29.legacy-b', '1//legacy-b', '[\"{SEND}\"]', now() - interval '1 hour', 'active');",
    )
    .await;
    let other = TestApp::spawn().await;
    let (ok, plan, stderr) = cli(&other, &url, &["migrate", "--plan"]).await;
    assert!(ok, "{plan}{stderr}");
    for expected in [
        "ALTER TABLE gmail_token DROP CONSTRAINT \"gmail_token_refresh_token_check\"  [schema only]",
        "ALTER TABLE gmail_token DROP CONSTRAINT \"gmail_token_status_check\"  [schema only]",
        "UPDATE gmail_token SET email = NULL WHERE email ~ '^\\s*$'  [updates 1 row]",
        "UPDATE gmail_token SET google_sub = NULL WHERE google_sub ~ '^\\s*$'  [updates 1 row]",
        "ADD CONSTRAINT gmail_token_status_check CHECK (status IN ('active', 'reauth_required', 'revoked'))  [checks 2 rows]",
    ] {
        assert!(plan.contains(expected), "{expected}\nin\n{plan}");
    }
    assert!(
        !plan.contains("DROP CONSTRAINT \"gmail_token_provider_check\""),
        "{plan}"
    );

    // B's expired token cannot be refreshed: B is marked reauth_required
    // (no 500), and A completes 재인증.
    let app = serve_adopted(url, a, b).await;
    let (status, email, sub): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT status, email, google_sub FROM gmail_token WHERE user_id = $1")
            .bind(b)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), email, sub),
        ("reauth_required", None, None)
    );
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'gmail_token'::regclass AND contype = 'c' ORDER BY conname",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        checks,
        [
            "gmail_token_provider_check CHECK ((provider = 'google'::text))".to_string(),
            format!(
                "gmail_token_status_check {}",
                auth_server::store::legacy::plan::STATUS_CHECK_DEFINITION
            ),
        ]
    );
    a_new_user_connects(&app).await;
}

#[tokio::test]
async fn a_status_an_old_check_allowed_and_the_service_does_not_know_is_refused_by_row() {
    let (url, a, _) = legacy_database(
        "CREATE TABLE gmail_token (
             user_id uuid PRIMARY KEY,
             access_token text,
             status text CHECK (status IN ('active', 'expired')));
         INSERT INTO gmail_token VALUES ('{A}', 'ya29.legacy-a', 'expired'), ('{B}', 'ya29.legacy-b', 'active');",
    )
    .await;
    let before = schema_and_data(&url).await;
    let settings = auth_server::config::PoolSettings::default();
    let err = auth_server::store::connect_and_migrate(&url, &settings)
        .await
        .expect_err("refused");
    let auth_server::store::legacy::AdoptError::Refused(refusal) = err else {
        panic!("refused, not {err}");
    };
    let text = refusal.to_string();
    assert!(
        text.contains(&format!(
            "1 row has ({a} ('expired')) a status the service does not know"
        )),
        "{text}"
    );
    assert_eq!(schema_and_data(&url).await, before, "nothing changed");
}

#[tokio::test]
async fn a_reader_idle_in_a_transaction_stops_the_adoption_within_its_lock_timeout_by_name() {
    use sqlx::{ConnectOptions, Connection};
    use std::time::Duration;
    let (url, a, _) = legacy_database(
        "CREATE TABLE gmail_token (user_id varchar(36) PRIMARY KEY, access_token text);
         INSERT INTO gmail_token VALUES ('{A}', 'ya29.legacy-a');",
    )
    .await;
    let before = schema_and_data(&url).await;
    // An old reader (psycopg2 opens a transaction on its first SELECT) left
    // idle in its transaction: it holds ACCESS SHARE on the table.
    let mut reader = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .application_name("legacy-python-reader")
        .connect()
        .await
        .unwrap();
    reader.execute("BEGIN").await.unwrap();
    reader
        .execute("SELECT access_token FROM gmail_token")
        .await
        .unwrap();

    let other = TestApp::spawn().await;
    let child = crate::doctor::cli_command(&other, &["migrate"], &[("DATABASE_URL", url.clone())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let probe = sqlx::PgPool::connect(&url).await.unwrap();
    crate::wait::wait_until(
        "the adoption waits for its lock",
        Duration::from_secs(60),
        async || {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE d.datname = current_database() AND NOT l.granted
                   AND l.relation = 'gmail_token'::regclass)",
            )
            .fetch_one(&probe)
            .await
            .unwrap()
        },
    )
    .await;
    // A new reader queues behind the waiting ALTER, but not for long.
    let count = tokio::time::timeout(
        Duration::from_secs(60),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM gmail_token").fetch_one(&probe),
    )
    .await
    .expect("a new reader is not blocked until the old one ends")
    .unwrap();
    assert_eq!(count, 1);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("migrate gives up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "gmail_token is locked by other sessions",
        "nothing was changed",
        "application_name \"legacy-python-reader\"",
        "state \"idle in transaction\"",
        "fix: end those sessions",
    ] {
        assert!(stderr.contains(expected), "{expected}\nin\n{stderr}");
    }
    assert_eq!(schema_and_data(&url).await, before, "nothing changed");

    // The reader ends its transaction: `migrate` adopts the table.
    reader.execute("ROLLBACK").await.unwrap();
    let (ok, _, stderr) = cli(&other, &url, &["migrate"]).await;
    assert!(ok, "{stderr}");
    let user: uuid::Uuid = sqlx::query_scalar("SELECT user_id FROM gmail_token")
        .fetch_one(&probe)
        .await
        .unwrap();
    assert_eq!(user, a);
    reader.close().await.unwrap();
    probe.close().await;
}
