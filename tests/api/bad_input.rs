//! Bad input gets a clear answer and changes nothing.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

/// A user with a Gmail-only passport, and a consent of theirs in flight.
async fn setup() -> (TestApp, Uuid, Browser, url::Url) {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let authorize = browser.start(None).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    (app, user, browser, cb)
}

fn with_param(url: &url::Url, key: &str, value: &str) -> url::Url {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = query_map_vec(url)
        .into_iter()
        .map(|(k, v)| {
            if k == key {
                (k, value.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u
}

async fn assert_error_page(resp: reqwest::Response, status: StatusCode, korean: &str) {
    assert_eq!(resp.status(), status);
    assert!(
        resp.headers().get("location").is_none(),
        "an error page, not a redirect"
    );
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let body = resp.text().await.unwrap();
    assert!(body.contains(korean), "page should say `{korean}`:\n{body}");
    assert!(body.contains("What to do"), "page says what to do next");
}

#[tokio::test]
async fn unknown_state_is_refused_and_nothing_changes() {
    let (app, _, browser, cb) = setup().await;
    let before = app.snapshot().await;
    let forged = with_param(&cb, "state", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_error_page(
        browser.callback(&forged).await,
        StatusCode::BAD_REQUEST,
        "알 수 없는",
    )
    .await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn tampered_state_is_refused_and_nothing_changes() {
    let (app, _, browser, cb) = setup().await;
    let before = app.snapshot().await;
    let state = query_map(&cb)["state"].clone();
    let mut chars: Vec<char> = state.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    let tampered = with_param(&cb, "state", &chars.into_iter().collect::<String>());
    assert_error_page(
        browser.callback(&tampered).await,
        StatusCode::BAD_REQUEST,
        "알 수 없는",
    )
    .await;
    let garbage = with_param(&cb, "state", "'; DROP TABLE gmail_token; --");
    assert_error_page(
        browser.callback(&garbage).await,
        StatusCode::BAD_REQUEST,
        "알 수 없는",
    )
    .await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_missing_state_is_refused() {
    let (app, _, browser, cb) = setup().await;
    let before = app.snapshot().await;
    let mut no_state = cb.clone();
    let pairs: Vec<(String, String)> = query_map_vec(&cb)
        .into_iter()
        .filter(|(k, _)| k != "state")
        .collect();
    no_state.query_pairs_mut().clear().extend_pairs(pairs);
    assert_error_page(
        browser.callback(&no_state).await,
        StatusCode::BAD_REQUEST,
        "알 수 없는",
    )
    .await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn an_expired_state_is_refused_and_the_connection_is_unchanged() {
    let (app, user, browser, cb) = setup().await;
    sqlx::query("UPDATE oauth_state SET expires_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let row_before = format!("{:?}", app.row(user).await.unwrap());
    let events_before = app.events(user).await.len();
    assert_error_page(
        browser.callback(&cb).await,
        StatusCode::BAD_REQUEST,
        "시간이 지났습니다",
    )
    .await;
    assert_eq!(format!("{:?}", app.row(user).await.unwrap()), row_before);
    assert_eq!(app.events(user).await.len(), events_before);
    assert_eq!(app.state_count().await, 0, "the expired attempt is deleted");
}

#[tokio::test]
async fn a_replayed_callback_shows_the_friendly_page_and_changes_nothing() {
    let (app, user, browser, cb) = setup().await;
    let first = browser.callback(&cb).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let after_first = app.snapshot().await;
    // The same URL from another browser (no flow cookie), as an attacker
    // holding it would send it. (The browser that finished it lands on the
    // current state: tests/api/banners.rs.)
    let replay = app.browser(Some(user)).callback(&cb).await;
    assert_error_page(replay, StatusCode::BAD_REQUEST, "이미 처리되었거나").await;
    assert_eq!(app.snapshot().await, after_first);
}

#[tokio::test]
async fn a_callback_without_the_flow_cookie_is_refused_and_the_flow_survives() {
    let (app, user, browser, cb) = setup().await;
    let before = app.snapshot().await;
    // Same user, another browser without the flow cookie.
    let other = app.browser(Some(user));
    assert_error_page(
        other.callback(&cb).await,
        StatusCode::FORBIDDEN,
        "다른 브라우저",
    )
    .await;
    // Another browser holding a forged cookie of the right name.
    let name = auth_server::passport::flow::flow_cookie_name(&query_map(&cb)["state"]);
    let forged = app.browser(Some(user));
    forged.jar.add_cookie_str(
        &format!(
            "{name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; Path=/passport/gmail/callback"
        ),
        &app.addr.parse().unwrap(),
    );
    assert_error_page(
        forged.callback(&cb).await,
        StatusCode::FORBIDDEN,
        "다른 브라우저",
    )
    .await;
    assert_eq!(
        app.snapshot().await,
        before,
        "nothing consumed, nothing stored"
    );
    // The browser that started it can still finish.
    let done = browser.callback(&cb).await;
    assert_eq!(query_map(&location(&done))["result"], "upgraded");
}

#[tokio::test]
async fn a_callback_without_a_session_asks_to_sign_in_and_keeps_the_flow() {
    let (app, user, browser, cb) = setup().await;
    let before = app.snapshot().await;
    // The flow cookie is there, but the ro-being session is gone (signed out
    // on a shared browser): nobody's Google account may land on it.
    let url: url::Url = app.addr.parse().unwrap();
    browser
        .jar
        .add_cookie_str("access_token=; Max-Age=0; Path=/", &url);
    let resp = browser.callback(&cb).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("로그인이 필요합니다"));
    assert_eq!(app.snapshot().await, before);
    // Signed in again, the same browser finishes.
    browser
        .jar
        .add_cookie_str(&format!("access_token={}; Path=/", session_for(user)), &url);
    let done = browser.callback(&cb).await;
    assert_eq!(query_map(&location(&done))["result"], "upgraded");
}

#[tokio::test]
async fn another_signed_in_user_cannot_finish_someone_elses_flow() {
    let (app, user, browser, cb) = setup().await;
    let before = app.snapshot().await;
    // The victim's browser holds the flow cookie but an attacker signed it
    // in as someone else: refused.
    let intruder = Uuid::new_v4();
    browser.jar.add_cookie_str(
        &format!("access_token={}; Path=/", session_for(intruder)),
        &app.addr.parse().unwrap(),
    );
    let resp = browser.callback(&cb).await;
    assert_error_page(resp, StatusCode::FORBIDDEN, "다른 사용자").await;
    assert_eq!(
        app.snapshot().await,
        before,
        "nothing consumed, nothing stored"
    );
    assert!(app.row(intruder).await.is_none());
    let _ = user;
}

#[tokio::test]
async fn a_code_google_rejects_ends_in_result_error_and_changes_nothing() {
    let (app, user, browser, cb) = setup().await;
    let row_before = format!("{:?}", app.row(user).await.unwrap());
    let events_before = app.snapshot().await.events;
    let bad_code = with_param(&cb, "code", "4/not-a-code-google-issued");
    let resp = browser.callback(&bad_code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let landed = location(&resp);
    assert_eq!(
        landed.as_str(),
        "https://ro-being.com/settings/items?passport=gmail&result=error&reason=code_rejected"
    );
    assert_eq!(format!("{:?}", app.row(user).await.unwrap()), row_before);
    assert_eq!(app.snapshot().await.events, events_before);
}

#[tokio::test]
async fn google_errors_other_than_denied_end_in_result_error() {
    let (app, user, browser, cb) = setup().await;
    let row_before = format!("{:?}", app.row(user).await.unwrap());
    let mut err = cb.clone();
    let state = query_map(&cb)["state"].clone();
    err.query_pairs_mut()
        .clear()
        .append_pair("error", "server_error")
        .append_pair("state", &state);
    let resp = browser.callback(&err).await;
    assert_eq!(
        location(&resp).as_str(),
        "https://ro-being.com/settings/items?passport=gmail&result=error&reason=google_error"
    );
    assert_eq!(format!("{:?}", app.row(user).await.unwrap()), row_before);
}

#[tokio::test]
async fn return_to_outside_the_allowed_origins_is_refused_at_connect() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let before = app.snapshot().await;
    for bad in [
        "https://evil.example/steal",
        "https://ro-being.com.evil.io/",
        "//evil.io/",
        "https:evil.io",
        "https://ro-being.com@evil.io/",
        "https:\\\\evil.io",
        "javascript:alert(1)",
    ] {
        let resp = browser.connect(Some(bad)).await;
        assert_error_page(resp, StatusCode::BAD_REQUEST, "허용되지 않은").await;
        let api = browser
            .client
            .post(app.url("/api/passport/gmail/connect"))
            .json(&serde_json::json!({ "return_to": bad }))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: serde_json::Value = api.json().await.unwrap();
        assert_eq!(body["error"], "bad_request");
    }
    assert_eq!(app.snapshot().await, before, "no attempt stored");
}

#[tokio::test]
async fn duplicated_and_oversized_parameters_are_refused() {
    let (app, _, browser, cb) = setup().await;
    let before = app.snapshot().await;
    let state = query_map(&cb)["state"].clone();
    let dup = format!("{}&state={state}", cb.as_str());
    let resp = browser.get(&dup).await;
    assert_error_page(resp, StatusCode::BAD_REQUEST, "잘못된 요청").await;
    let huge = format!("{}&pad={}", cb.as_str(), "x".repeat(5000));
    let resp = browser.get(&huge).await;
    assert_error_page(resp, StatusCode::BAD_REQUEST, "잘못된 요청").await;
    let resp = browser
        .get("/passport/gmail/connect?return_to=https://ro-being.com/a&return_to=https://evil.io/")
        .await;
    assert_error_page(resp, StatusCode::BAD_REQUEST, "잘못된 요청").await;
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn providers_other_than_gmail_are_404() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let before = app.snapshot().await;
    for path in [
        "/passport/outlook",
        "/passport/outlook/connect",
        "/passport/outlook/callback?state=x&code=y",
        "/passport/GMAIL",
    ] {
        let resp = browser.get(path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let resp = browser.get("/api/passport/outlook").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert_eq!(app.snapshot().await, before);
}
