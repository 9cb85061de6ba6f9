//! Named internal keys and the fetch ledger: who was handed which user's
//! tokens, for which scopes, counted in memory and written in batches.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::doctor::run_cli;
use crate::helpers::*;
use crate::wait::wait_for;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, Executor};
use uuid::Uuid;

/// Random, as `auth-server init` makes them.
const CALENDAR_KEY: &str = "cal-7Qm2XvR9pL4sT8wZ1yB6nD3fH5jK0aE";
const GMAIL_KEY: &str = "gml-Vb8Nq3Lr6Ts1Wx9Yz4Pc7Md2Kf5Hj0Ga";
/// Given without a name: named by its fingerprint.
const PLAIN_KEY: &str = "pln-Hx4Rt8Mq2Vz6Lb1Nc9Wf3Jd7Ks5Ty0Pe";

fn named_keys() -> String {
    format!("skill-calendar:{CALENDAR_KEY},skill-gmail:{GMAIL_KEY},{PLAIN_KEY}")
}

/// `key-` and the first 8 hex digits of the key's SHA-256.
fn fingerprint(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    format!("key-{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}

async fn fetch(app: &TestApp, key: &str, user: Uuid, scopes: &[&str]) -> StatusCode {
    app.client()
        .post(app.url("/internal/passport/gmail/token"))
        .bearer_auth(key)
        .json(&serde_json::json!({"user_id": user, "scopes": scopes}))
        .send()
        .await
        .unwrap()
        .status()
}

/// `n` fetches at once; every answer must be `expect`.
async fn burst(
    app: &TestApp,
    key: &'static str,
    user: Uuid,
    scopes: &'static [&'static str],
    n: usize,
    expect: StatusCode,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url) = (app.client(), app.url("/internal/passport/gmail/token"));
        set.spawn(async move {
            let status = client
                .post(url)
                .bearer_auth(key)
                .json(&serde_json::json!({"user_id": user, "scopes": scopes}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, expect, "{key} for {user} {scopes:?}");
        });
    }
    set
}

/// Tokens in the table by (caller, user, scopes), whatever the minute.
async fn stored(db: &sqlx::PgPool) -> BTreeMap<(String, Uuid, String), i64> {
    let rows: Vec<(String, Uuid, String, i64)> = sqlx::query_as(
        "SELECT caller, user_id, array_to_string(scopes, ' '), sum(tokens)::int8
         FROM token_fetch_ledger GROUP BY 1, 2, 3",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(c, u, s, n)| ((c, u, s), n))
        .collect()
}

async fn ledger_json(app: &TestApp, key: &str, user: Uuid, query: &str) -> (StatusCode, Value) {
    let resp = app
        .client()
        .get(app.url(&format!(
            "/internal/passport/gmail/users/{user}/ledger{query}"
        )))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Tokens of a ledger answer's rows by (caller, scopes), summed over minutes.
fn by_caller_and_scopes(ledger: &Value) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for r in ledger["rows"].as_array().unwrap() {
        let scopes: Vec<&str> = r["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let key = (r["caller"].as_str().unwrap().to_string(), scopes.join(" "));
        *out.entry(key).or_insert(0) += r["tokens"].as_i64().unwrap();
    }
    out
}

fn totals(ledger: &Value) -> BTreeMap<String, i64> {
    ledger["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["caller"].as_str().unwrap().to_string(),
                t["tokens"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, &str, i64)]) -> BTreeMap<(String, String), i64> {
    pairs
        .iter()
        .map(|(c, s, n)| ((c.to_string(), s.to_string()), *n))
        .collect()
}

#[tokio::test]
async fn a_burst_from_two_named_callers_is_counted_per_caller_user_and_scopes() {
    let app = TestApp::spawn_with(&[
        ("INTERNAL_API_KEYS", &named_keys()),
        ("LEDGER_FLUSH_SECS", "1"),
    ])
    .await;
    let (jisoo, minho, nobody) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.seed_passport(jisoo, JISOO, ALL).await;
    app.seed_passport(minho, MINHO, ALL).await;

    const CAL: &[&str] = &["calendar.events"];
    const MAIL: &[&str] = &["gmail.readonly", "gmail.send"];
    const DRIVE: &[&str] = &["https://www.googleapis.com/auth/drive"];
    let mut all = Vec::new();
    for user in [jisoo, minho] {
        all.push(burst(&app, CALENDAR_KEY, user, CAL, 12, StatusCode::OK).await);
        all.push(burst(&app, GMAIL_KEY, user, MAIL, 7, StatusCode::OK).await);
        // Refused answers hand out no token and are not counted.
        all.push(burst(&app, GMAIL_KEY, user, DRIVE, 3, StatusCode::FORBIDDEN).await);
    }
    all.push(burst(&app, PLAIN_KEY, jisoo, &[], 4, StatusCode::OK).await);
    all.push(burst(&app, CALENDAR_KEY, nobody, CAL, 2, StatusCode::NOT_FOUND).await);
    let wrong = "wrong-Qz8Xc1Vb5Nm9Lk3Jh7Gf2Ds6Ap0Wo4E";
    assert_eq!(
        fetch(&app, wrong, jisoo, CAL).await,
        StatusCode::UNAUTHORIZED
    );
    for set in all {
        set.join_all().await;
    }

    // The background task writes the counts (LEDGER_FLUSH_SECS=1).
    let plain = fingerprint(PLAIN_KEY);
    let (cal, mail) = (
        full("calendar.events"),
        format!("{} {}", full("gmail.readonly"), full("gmail.send")),
    );
    let expected: BTreeMap<(String, Uuid, String), i64> = [
        (("skill-calendar".to_string(), jisoo, cal.clone()), 12),
        (("skill-calendar".to_string(), minho, cal.clone()), 12),
        (("skill-gmail".to_string(), jisoo, mail.clone()), 7),
        (("skill-gmail".to_string(), minho, mail.clone()), 7),
        ((plain.clone(), jisoo, String::new()), 4),
    ]
    .into();
    wait_for(
        "the ledger in the database",
        Duration::from_secs(15),
        async || {
            let seen = stored(&app.db).await;
            if seen == expected {
                Ok(())
            } else {
                Err(seen)
            }
        },
    )
    .await;

    // The internal API: rows (short names) and totals per caller.
    let (status, j) = ledger_json(&app, GMAIL_KEY, jisoo, "").await;
    assert_eq!(status, StatusCode::OK, "{j}");
    assert_eq!(
        by_caller_and_scopes(&j),
        owned(&[
            ("skill-calendar", "calendar.events", 12),
            ("skill-gmail", "gmail.send gmail.readonly", 7),
            (&plain, "", 4),
        ]),
        "{j}"
    );
    let want: BTreeMap<String, i64> = [
        ("skill-calendar".to_string(), 12),
        ("skill-gmail".to_string(), 7),
        (plain.clone(), 4),
    ]
    .into();
    assert_eq!(totals(&j), want, "{j}");
    assert!(
        j["note"].as_str().unwrap().contains("other instances"),
        "{j}"
    );
    let (_, only) = ledger_json(&app, PLAIN_KEY, minho, "?caller=skill-gmail").await;
    assert_eq!(
        by_caller_and_scopes(&only),
        owned(&[("skill-gmail", "gmail.send gmail.readonly", 7)]),
        "{only}"
    );
    let (_, later) = ledger_json(&app, CALENDAR_KEY, minho, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later["rows"], serde_json::json!([]), "{later}");

    // The command line shows the same.
    let out = run_cli(&app, &["ledger", "--user", &jisoo.to_string(), "--json"]).await;
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(totals(&cli), want, "{out}");
    let table = run_cli(&app, &["ledger", "--user", &minho.to_string()]).await;
    assert!(
        table
            .lines()
            .any(|l| l.contains("skill-calendar") && l.contains("12")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("skill-gmail") && l.contains("gmail.send gmail.readonly")),
        "{table}"
    );

    // The metric carries the caller; a request without a valid key is "-".
    let m = app.metrics().await;
    for needle in [
        r#"passport_token_requests_total{code="ok",caller="skill-calendar"}"#,
        r#"passport_token_requests_total{code="scope_missing",caller="skill-gmail"}"#,
        r#"passport_token_requests_total{code="not_connected",caller="skill-calendar"}"#,
        r#"passport_token_requests_total{code="unauthorized",caller="-"}"#,
    ] {
        assert!(m.contains(needle), "missing {needle} in:\n{m}");
    }
    assert!(m.contains(&format!(r#"caller="{plain}""#)), "{m}");
}

#[tokio::test]
async fn counts_still_in_memory_are_written_when_the_service_stops() {
    let mut app = TestApp::spawn_with(&[
        ("INTERNAL_API_KEYS", &named_keys()),
        ("LEDGER_FLUSH_SECS", "300"),
    ])
    .await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    for _ in 0..5 {
        assert_eq!(
            fetch(&app, CALENDAR_KEY, user, &["calendar"]).await,
            StatusCode::OK
        );
    }
    assert!(
        stored(&app.db).await.is_empty(),
        "nothing written before the flush"
    );
    // The service closes its pool (the harness's too) when it stops.
    let db = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let _ = app.shutdown.take().unwrap().send(());
    let expected: BTreeMap<(String, Uuid, String), i64> =
        [(("skill-calendar".to_string(), user, full("calendar")), 5)].into();
    wait_for("the final flush", Duration::from_secs(10), async || {
        let seen = stored(&db).await;
        if seen == expected {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
}

#[tokio::test]
async fn the_ledger_route_wants_an_internal_key_and_a_good_query() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let url = app.url(&format!("/internal/passport/gmail/users/{user}/ledger"));
    let resp = app.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let session = app
        .client()
        .get(&url)
        .bearer_auth(session_for(user))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
    for (query, status) in [
        ("?since=yesterday", StatusCode::BAD_REQUEST),
        ("?caller=Not%20A%20Name", StatusCode::BAD_REQUEST),
        ("?limit=5", StatusCode::BAD_REQUEST),
        (
            "?since=2026-01-01T00:00:00Z&caller=skill-gmail",
            StatusCode::OK,
        ),
    ] {
        let (got, j) = ledger_json(&app, INTERNAL_KEY, user, query).await;
        assert_eq!(got, status, "{query}: {j}");
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(j["error"], "bad_request", "{j}");
        }
    }
    let (status, j) = ledger_json(&app, INTERNAL_KEY, user, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (j["rows"].clone(), j["totals"].clone()),
        (serde_json::json!([]), serde_json::json!([]))
    );
    let bad = app
        .client()
        .get(app.url("/internal/passport/gmail/users/not-a-uuid/ledger"))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn old_ledger_rows_are_pruned_and_recent_ones_kept() {
    let app = TestApp::spawn_with(&[
        ("LEDGER_RETENTION_DAYS", "30"),
        ("EVENT_RETENTION_DAYS", "0"),
        ("RETENTION_BATCH", "2"),
        ("RETENTION_INTERVAL_SECS", "1"),
    ])
    .await;
    let user = Uuid::new_v4();
    for age in [31, 45, 90, 400, 0, 29] {
        sqlx::query(
            "INSERT INTO token_fetch_ledger (caller, user_id, provider, minute, scopes, tokens)
             VALUES ('skill-calendar', $1, 'gmail',
                     date_trunc('minute', now() - make_interval(days => $2)), '{}', 1)",
        )
        .bind(user)
        .bind(age)
        .execute(&app.db)
        .await
        .unwrap();
    }
    wait_for(
        "old ledger rows pruned",
        Duration::from_secs(15),
        async || {
            let ages: Vec<i32> = sqlx::query_scalar(
                "SELECT extract(day FROM now() - minute)::int FROM token_fetch_ledger ORDER BY 1",
            )
            .fetch_all(&app.db)
            .await
            .unwrap();
            if ages == [0, 29] {
                Ok(())
            } else {
                Err(ages)
            }
        },
    )
    .await;
}

/// The value of an unlabelled counter in the Prometheus text (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_ledger_the_database_cannot_take_keeps_its_counts_and_drops_only_past_its_cap() {
    let app = TestApp::spawn_with(&[
        ("INTERNAL_API_KEYS", &named_keys()),
        ("LEDGER_FLUSH_SECS", "1"),
        ("LEDGER_MAX_KEYS", "100"),
        ("DB_LOCK_TIMEOUT_MS", "100"),
    ])
    .await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.metrics().await;
    let (failures, dropped) = (
        counter(&before, "passport_ledger_write_failures_total"),
        counter(&before, "passport_ledger_dropped_total"),
    );
    // Another session holds the table: every write waits, then fails.
    let mut locker = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    locker.execute("BEGIN").await.unwrap();
    locker
        .execute("LOCK TABLE token_fetch_ledger IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // 128 distinct scope sets (every subset of seven scopes): 128 counts,
    // more than the 100 the ledger keeps while it cannot write.
    for mask in 0u32..128 {
        let scopes: Vec<&str> = (0..7)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| ALL[i])
            .collect();
        assert_eq!(
            fetch(&app, CALENDAR_KEY, user, &scopes).await,
            StatusCode::OK
        );
    }
    wait_for("a failed write", Duration::from_secs(15), async || {
        let seen = counter(&app.metrics().await, "passport_ledger_write_failures_total");
        if seen > failures {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    let lost = counter(&app.metrics().await, "passport_ledger_dropped_total") - dropped;
    // The first 100 distinct counts are kept (a write under way holds
    // their place), the other 28 dropped.
    assert_eq!(lost, 28, "counts past the cap are dropped");
    locker.execute("ROLLBACK").await.unwrap();

    // Once the table is free, every count kept is written: with those
    // dropped, exactly the tokens handed out.
    wait_for(
        "the kept counts written",
        Duration::from_secs(15),
        async || {
            let written: i64 = stored(&app.db).await.values().sum();
            if written as u64 + lost == 128 {
                Ok(())
            } else {
                Err(written)
            }
        },
    )
    .await;
}

/// The `n` distinct scope sets from `from` on (subsets of seven scopes).
fn scope_sets(from: u32, n: u32) -> Vec<Vec<&'static str>> {
    (from..from + n)
        .map(|mask| {
            (0..7)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| ALL[i])
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_ledger_read_cancelled_during_its_write_loses_no_counts() {
    let app = TestApp::spawn_with(&[
        ("INTERNAL_API_KEYS", &named_keys()),
        // Only the reads (and the cap) write: no round of the flusher.
        ("LEDGER_FLUSH_SECS", "300"),
        ("LEDGER_MAX_KEYS", "100"),
        ("HTTP_REQUEST_TIMEOUT_SECS", "1"),
        ("DB_LOCK_TIMEOUT_MS", "60000"),
        ("DB_STATEMENT_TIMEOUT_MS", "60000"),
    ])
    .await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let lock = async || {
        let mut locker = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        locker.execute("BEGIN").await.unwrap();
        locker
            .execute("LOCK TABLE token_fetch_ledger IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        locker
    };

    // 60 counts; the read's write waits for the table past the request
    // timeout, which cancels the request.
    let mut locker = lock().await;
    for scopes in scope_sets(0, 60) {
        assert_eq!(
            fetch(&app, CALENDAR_KEY, user, &scopes).await,
            StatusCode::OK
        );
    }
    let (status, _) = ledger_json(&app, GMAIL_KEY, user, "").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the request timed out"
    );
    locker.execute("ROLLBACK").await.unwrap();

    // The write finishes without the request that asked for it.
    wait_for(
        "the cancelled read's counts written",
        Duration::from_secs(15),
        async || {
            let written: i64 = stored(&app.db).await.values().sum();
            if written == 60 {
                Ok(())
            } else {
                Err(written)
            }
        },
    )
    .await;

    // And they no longer hold places under the cap: 41 new counts while the
    // table is held again are all kept (60 stranded ones would leave 40).
    let mut locker = lock().await;
    for scopes in scope_sets(60, 41) {
        assert_eq!(
            fetch(&app, CALENDAR_KEY, user, &scopes).await,
            StatusCode::OK
        );
    }
    locker.execute("ROLLBACK").await.unwrap();
    let (status, ledger) = ledger_json(&app, GMAIL_KEY, user, "").await;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    // 60 + 41: every count kept, none dropped. (The dropped counter is not
    // read here: the metrics recorder is one per test process, shared with
    // the test that fills the ledger past its cap.)
    assert_eq!(
        totals(&ledger),
        BTreeMap::from([("skill-calendar".to_string(), 101)])
    );
}

#[tokio::test]
async fn the_request_log_names_the_caller_and_never_the_key() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}")),
        ("INTERNAL_API_KEYS", named_keys()),
        ("RUST_LOG", "info,tower_http=debug".to_string()),
        ("LOG_FORMAT", "json".to_string()),
    ];
    let mut cmd = crate::doctor::cli_command(&app, &["serve"], &env);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut logs: Vec<String> = Vec::new();
    let mut next = async || {
        let line = tokio::time::timeout_at(deadline, stderr.next_line())
            .await
            .expect("a log line in time")
            .unwrap()
            .expect("still running");
        assert!(!line.contains(CALENDAR_KEY), "the key is logged: {line}");
        line
    };
    while !logs.iter().any(|l| l.contains("auth-server listening")) {
        logs.push(next().await);
    }
    let status = app
        .client()
        .post(format!(
            "http://127.0.0.1:{port}/internal/passport/gmail/token"
        ))
        .bearer_auth(CALENDAR_KEY)
        .json(&serde_json::json!({"user_id": user, "scopes": ["calendar.events"]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let line = loop {
        let line = next().await;
        if line.contains("finished processing request") && line.contains("/token") {
            break line;
        }
    };
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["span"]["caller"], "skill-calendar", "{line}");
    let _ = child.kill().await;
}
