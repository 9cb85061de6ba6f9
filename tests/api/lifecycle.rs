//! Process lifecycle: graceful shutdown on SIGTERM, and a database that is
//! not there yet at start.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;
use crate::wait::wait_until;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

fn sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    // Google takes 2 s to refresh: the request is in flight when SIGTERM comes.
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 2000,
        ..Behaviour::default()
    });
    let (mut child, lines) = crate::security::spawn_server(&app, &[]).await;
    let listening = lines
        .iter()
        .find(|l| l.contains("auth-server listening"))
        .unwrap();
    let addr = listening
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let base = format!("http://{addr}");

    let client = app.client();
    let url = format!("{base}/internal/passport/gmail/token");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(INTERNAL_KEY)
            .json(&serde_json::json!({"user_id": user, "scopes": ["calendar.events"]}))
            .send()
            .await
    });
    // Google holds the refresh for 2 s once it has seen it: SIGTERM goes out
    // while the request is in flight.
    wait_until(
        "the refresh to reach Google",
        Duration::from_secs(10),
        async || app.fake.calls("token.refresh_token.attempt") >= 1,
    )
    .await;
    assert_eq!(
        app.fake.calls("token.refresh_token.attempt"),
        1,
        "one refresh is under way"
    );
    sigterm(child.id().unwrap());

    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));

    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // And it no longer accepts connections.
    assert!(app
        .client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
}

/// Forward one TCP connection to the tests' PostgreSQL server (`upstream`).
async fn forward(mut inbound: tokio::net::TcpStream, upstream: String) {
    match tokio::net::TcpStream::connect(&upstream).await {
        Ok(mut outbound) => {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
        Err(e) => eprintln!("forwarder: cannot reach PostgreSQL at {upstream}: {e}"),
    }
}

#[tokio::test]
async fn a_database_that_comes_up_late_is_waited_for() {
    let app = TestApp::spawn().await;
    // The forwarder below targets the server the tests run against.
    let upstream = postgres_tcp_addr();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut db_url: url::Url = app.database_url.parse().unwrap();
    db_url.set_host(Some("127.0.0.1")).unwrap();
    db_url.set_port(Some(port)).unwrap();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        ("DATABASE_URL", db_url.to_string()),
        ("BIND_ADDR", format!("127.0.0.1:{http_port}")),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{http_port}")),
        ("RUST_LOG", "info".to_string()),
        ("LOG_FORMAT", "pretty".to_string()),
    ];
    let mut cmd = crate::doctor::cli_command(&app, &["serve"], &env);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    // It says the database is unreachable and keeps trying.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("still running");
        assert!(!line.contains("panicked"), "{line}");
        if line.contains("database unreachable; retrying") {
            break;
        }
    }
    // The database "comes up".
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(forward(s, upstream.clone()));
        }
    });
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("still running");
        if line.contains("auth-server listening") {
            break;
        }
    }
    let ready = app
        .client()
        .get(format!("http://127.0.0.1:{http_port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    child.kill().await.unwrap();
}

/// The address `auth-server serve` logged that it listens on.
fn listening_addr(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.contains("auth-server listening"))
        .unwrap();
    let addr = line.split("addr=").nth(1).unwrap();
    addr.split_whitespace().next().unwrap().to_string()
}

/// A token request for `user` against `base`, sent in the background.
fn token_request(
    app: &TestApp,
    base: &str,
    user: Uuid,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = app
        .client()
        .post(format!("{base}/internal/passport/gmail/token"))
        .bearer_auth(INTERNAL_KEY)
        .json(&serde_json::json!({"user_id": user, "scopes": ["calendar.events"]}));
    tokio::spawn(request.send())
}

#[tokio::test]
async fn sigterm_keeps_the_grace_period_answers_503_json_at_the_deadline_and_records_what_finished()
{
    let app = TestApp::spawn().await;
    let (quick, slow) = (Uuid::new_v4(), Uuid::new_v4());
    for user in [quick, slow] {
        app.seed_passport(user, JISOO, ALL).await;
        app.expire(user).await;
    }
    let (mut child, lines) =
        crate::security::spawn_server(&app, &[("SHUTDOWN_GRACE_SECS", "2")]).await;
    let base = format!("http://{}", listening_addr(&lines));
    let attempts = "token.refresh_token.attempt";

    // The first refresh takes 1 s at Google: it finishes within the grace.
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 1000,
        ..Behaviour::default()
    });
    let quick_req = token_request(&app, &base, quick);
    wait_until(
        "the first refresh to reach Google",
        Duration::from_secs(10),
        async || app.fake.calls(attempts) >= 1,
    )
    .await;
    // The second takes 8 s: it is still running at the deadline.
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 8000,
        ..Behaviour::default()
    });
    let slow_req = token_request(&app, &base, slow);
    wait_until(
        "the second refresh to reach Google",
        Duration::from_secs(10),
        async || app.fake.calls(attempts) >= 2,
    )
    .await;
    let signalled = std::time::Instant::now();
    sigterm(child.id().unwrap());

    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s")
        .unwrap();
    let exited_after = signalled.elapsed();
    let quick_resp = quick_req
        .await
        .unwrap()
        .expect("the quick request was answered");
    assert_eq!(quick_resp.status(), StatusCode::OK);
    let slow_resp = slow_req
        .await
        .unwrap()
        .expect("the slow request was answered, not reset");
    let slow_status = slow_resp.status();
    let slow_body = slow_resp.text().await.unwrap();
    eprintln!(
        "exited {exited_after:?} after SIGTERM; the slow request got {slow_status} {slow_body}"
    );
    assert!(
        exited_after <= Duration::from_secs(3),
        "exited {exited_after:?} after SIGTERM with a grace of 2 s"
    );
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(slow_status, StatusCode::SERVICE_UNAVAILABLE, "{slow_body}");
    let body: serde_json::Value = serde_json::from_str(&slow_body).expect("a JSON body");
    assert_eq!(body["error"], "unavailable", "{body}");
    // What finished is recorded.
    let kinds: Vec<EventKind> = app.events(quick).await.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::Refreshed), "{kinds:?}");
}

#[tokio::test]
async fn a_clean_shutdown_logs_at_info_only_on_stderr() {
    let app = TestApp::spawn().await;
    // A fresh database: the start runs every migration (PostgreSQL answers
    // some with notices, which are not news at INFO).
    let database_url = fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        ("DATABASE_URL", database_url),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}")),
        ("RUST_LOG", "info".to_string()),
        ("LOG_FORMAT", "json".to_string()),
    ];
    let mut cmd = crate::doctor::cli_command(&app, &["serve"], &env);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = child.stdout.take().unwrap();
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
        s
    });
    let mut logs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !logs
        .iter()
        .any(|l: &String| l.contains("auth-server listening"))
    {
        let line = tokio::time::timeout_at(deadline, stderr.next_line())
            .await
            .expect("listening in time")
            .unwrap()
            .expect("still running");
        logs.push(line);
    }
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    assert_eq!(
        app.client().get(&healthz).send().await.unwrap().status(),
        StatusCode::OK
    );

    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    while let Some(line) = stderr.next_line().await.unwrap() {
        logs.push(line);
    }
    assert_eq!(out.await.unwrap(), "", "nothing on stdout");
    assert_clean_info_logs(&logs, "auth-server stopped");
    assert!(
        logs.iter().any(|l| l.contains("shutdown signal received")),
        "{logs:#?}"
    );
}

/// Every line a JSON log record at INFO (no WARN, no ERROR, no PostgreSQL
/// notice), the last one saying `last`.
pub fn assert_clean_info_logs(lines: &[String], last: &str) {
    assert!(!lines.is_empty());
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log record, not {line:?}: {e}"));
        assert_eq!(record["level"], "INFO", "{line}");
        assert!(
            !line.contains("skipping"),
            "a PostgreSQL notice at INFO: {line}"
        );
    }
    assert!(lines.last().unwrap().contains(last), "{lines:#?}");
}
