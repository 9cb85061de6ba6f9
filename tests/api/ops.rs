//! Operations routes and the headers every response carries.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let h = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    assert!(h.headers().contains_key("x-request-id"));
    let r = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let user = Uuid::new_v4();
    app.browser(Some(user)).reauth(None, JISOO, ALL, true).await;
    let m = app.metrics().await;
    assert!(m.contains("passport_consents_started_total"), "{m}");
    assert!(m.contains("passport_consents_completed_total"), "{m}");
    assert!(m.contains("route=\"/passport/{provider}/callback\""), "{m}");
    assert!(m.contains("http_request_duration_seconds"), "{m}");
}

/// The security headers of an answer, by name.
fn security_headers(resp: &reqwest::Response) -> Vec<(&'static str, Option<String>)> {
    [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ]
    .into_iter()
    .map(|name| {
        let v = resp
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string());
        (name, v)
    })
    .collect()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_413_431_404_and_405_included() {
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let page = browser.get("/passport/gmail").await;
    assert_eq!(page.status(), StatusCode::OK);
    let expected = security_headers(&page);
    assert!(expected.iter().all(|(_, v)| v.is_some()), "{expected:?}");

    let big_body = "a".repeat(64 * 1024);
    let c = &browser.client;
    let answers = [
        (
            "413 on the API",
            c.post(app.url("/api/passport/gmail/connect"))
                .header("content-type", "application/json")
                .body(big_body.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "413 on a page",
            c.post(app.url("/passport/gmail/disconnect"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(big_body),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "431",
            c.get(app.url("/passport/gmail"))
                .header("x-padding", "a".repeat(20_000)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            "431 on the API",
            c.get(app.url("/api/passport/gmail"))
                .header("x-padding", "a".repeat(20_000)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        ("404", c.get(app.url("/nowhere")), StatusCode::NOT_FOUND),
        (
            "405 on the API",
            c.put(app.url("/api/passport/gmail")),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "405 on ops",
            c.delete(app.url("/healthz")),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (what, req, status) in answers {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), status, "{what}");
        assert_eq!(security_headers(&resp), expected, "{what}");
    }
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.db.close().await;
    let r = app.client().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn security_headers_on_pages_and_no_referrer_on_the_callback() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    for path in [
        "/passport/gmail",
        "/passport/gmail/callback?state=x",
        "/nowhere",
    ] {
        let resp = browser.get(path).await;
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    let css = browser.get("/static/passport.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn errors_never_carry_internal_text() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    // Break the database under the app: every page answers 500 without detail.
    sqlx::query("ALTER TABLE gmail_token RENAME TO gmail_token_gone")
        .execute(&app.db)
        .await
        .unwrap();
    let page = browser.get("/passport/gmail").await;
    assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = page.text().await.unwrap();
    assert!(html.contains("일시적인 오류"));
    assert!(
        !html.contains("gmail_token") && !html.contains("relation"),
        "{html}"
    );
    let api = browser.get("/api/passport/gmail").await;
    assert_eq!(api.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = api.text().await.unwrap();
    assert!(
        !body.contains("gmail_token") && !body.contains("relation"),
        "{body}"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` GETs of `url`, 16 at a time over keep-alive connections.
async fn hammer(url: &str, n: usize) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = reqwest::Client::new();
            let url = url.to_string();
            tokio::spawn(async move {
                for _ in 0..n / 16 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn metrics_memory_stays_flat_when_nothing_scrapes() {
    let app = TestApp::spawn().await;
    let (mut child, lines) = crate::security::spawn_server(&app, &[]).await;
    let line = lines
        .iter()
        .find(|l| l.contains("auth-server listening"))
        .unwrap();
    let addr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let url = format!("http://{addr}/healthz");
    let pid = child.id().unwrap();
    // Warm up: allocator arenas, connection buffers, the metric's series.
    hammer(&url, 20_000).await;
    let before = rss_kib(pid);
    let mut seen = vec![before];
    for _ in 0..3 {
        hammer(&url, 40_000).await;
        seen.push(rss_kib(pid));
    }
    let grown = seen.last().unwrap().saturating_sub(before);
    eprintln!("RSS (KiB) after warm-up and each 40k requests: {seen:?}; grown {grown} KiB");
    // Without upkeep every request's duration stays queued in the recorder.
    assert!(
        grown < 1024,
        "RSS grew {grown} KiB over 120k requests: {seen:?}"
    );
    child.kill().await.unwrap();
}
