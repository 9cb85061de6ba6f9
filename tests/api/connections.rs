//! Connection hygiene: slow and idle clients are let go, a slowloris cannot
//! starve the process of file descriptors, and a request that runs too long
//! is answered in JSON.

use std::time::{Duration, Instant};

use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// Generous: the header timeout in these tests is 2 s.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

fn host_port(app: &TestApp) -> String {
    app.addr.trim_start_matches("http://").to_string()
}

/// Wait up to `limit` for the server to close `s` (EOF or reset); the time
/// it took, or `None` if it stayed open.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_client_dripping_its_headers_is_disconnected_within_the_header_timeout() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    let start = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n";
    let mut closed = None;
    // One byte a second (the drip is the behaviour under test), checking
    // after each whether the server has hung up.
    for byte in head.iter() {
        if s.write_all(&[*byte]).await.is_err() {
            closed = Some(start.elapsed());
            break;
        }
        if closed_within(&mut s, Duration::from_secs(1))
            .await
            .is_some()
        {
            closed = Some(start.elapsed());
            break;
        }
        if start.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    let closed = closed
        .unwrap_or_else(|| panic!("still open after {:?} of dripping headers", start.elapsed()));
    eprintln!("dripping client disconnected after {closed:?}");
    assert!(closed <= CLOSED_WITHIN, "closed only after {closed:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    eprintln!("idle connection closed after {took:?}");
    assert!(
        took.is_some_and(|t| t <= CLOSED_WITHIN),
        "an idle connection was closed after {took:?} (None: still open after 10 s)"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_is_closed() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "2")]).await;
    let mut s = TcpStream::connect(host_port(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    eprintln!("idle keep-alive closed after {took:?}");
    assert!(
        took.is_some_and(|t| t <= CLOSED_WITHIN),
        "an idle keep-alive was closed after {took:?} (None: still open after 10 s)"
    );
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_is_answered_in_json() {
    let app = TestApp::spawn_with(&[("HTTP_REQUEST_TIMEOUT_SECS", "1")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 4000,
        ..Behaviour::default()
    });
    let start = Instant::now();
    let (status, body, headers) = app.token(user, &["calendar.events"]).await;
    let took = start.elapsed();
    eprintln!("slow request answered {status} after {took:?}: {body}");
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{body} after {took:?}"
    );
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(took < Duration::from_secs(4), "answered after {took:?}");
}

/// Start `auth-server serve` with the open-file soft limit lowered to
/// `nofile` (the hard limit unchanged); returns the child and its address.
async fn serve_with_nofile(
    app: &TestApp,
    extra: &[(&str, &str)],
    nofile: u64,
) -> (tokio::process::Child, String) {
    let lower = move |cmd: &mut tokio::process::Command| {
        // SAFETY: only an async-signal-safe system call between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
                rlimit::setrlimit(rlimit::Resource::NOFILE, nofile, hard)
            });
        }
    };
    let (child, _, addr) = crate::security::spawn_server_with(app, extra, lower).await;
    (child, addr)
}

#[tokio::test]
async fn healthz_answers_during_a_slowloris_of_1000_connections() {
    let _ = rlimit::increase_nofile_limit(8192);
    let app = TestApp::spawn().await;
    // A soft limit of 512 open files, as the host in the report had.
    let (mut child, addr) = serve_with_nofile(&app, &[], 512).await;
    let mut slow = Vec::new();
    let mut refused = 0;
    for _ in 0..1000 {
        let connect = TcpStream::connect(&addr);
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Ok(mut s)) => {
                // Half a request, never finished.
                let _ = s
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
                    .await;
                slow.push(s);
            }
            _ => refused += 1,
        }
        if refused >= 3 {
            break;
        }
    }
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let resp = fresh.get(format!("http://{addr}/healthz")).send().await;
    let took = start.elapsed();
    let status = resp.as_ref().map(|r| r.status());
    eprintln!(
        "{} slow connections open: /healthz gave {status:?} after {took:?}",
        slow.len()
    );
    assert!(
        matches!(status, Ok(StatusCode::OK)) && refused == 0,
        "with {} slow connections open ({refused} more could not connect), \
         /healthz gave {status:?} after {took:?}",
        slow.len()
    );
    assert!(child.try_wait().unwrap().is_none(), "the server died");
    drop(slow);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let app = TestApp::spawn_with(&[
        ("HTTP_MAX_CONNECTIONS", "16"),
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "2"),
    ])
    .await;
    // Sixteen idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(TcpStream::connect(host_port(&app)).await.unwrap());
    }
    let start = Instant::now();
    let resp = app
        .client()
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let took = start.elapsed();
    let status = resp.as_ref().map(|r| r.status());
    eprintln!("the 17th connection was answered {status:?} after {took:?}");
    assert!(
        matches!(status, Ok(StatusCode::OK)),
        "{status:?} after {took:?}"
    );
    // Not before the header timeout let an idle one go.
    assert!(
        took >= Duration::from_millis(1500),
        "answered after {took:?}"
    );
    drop(idle);
}
