//! The status API and the item page.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

#[tokio::test]
async fn status_of_a_user_without_connection() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let resp = app.browser(Some(user)).get("/api/passport/gmail").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["connected"], false);
    assert_eq!(body["status"], serde_json::Value::Null);
    assert_eq!(body["granted_scopes"], serde_json::json!([]));
    assert_eq!(body["missing_scopes"], serde_json::json!(ALL));
    assert_eq!(body["needs_reauth"], true);
    assert_eq!(
        body["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
}

#[tokio::test]
async fn status_of_a_gmail_only_passport_names_the_missing_calendar_scopes() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let body: serde_json::Value = app
        .browser(Some(user))
        .get("/api/passport/gmail")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["connected"], true);
    assert_eq!(body["email"], JISOO);
    assert_eq!(body["status"], "active");
    assert_eq!(body["granted_scopes"], serde_json::json!(GMAIL_ONLY));
    assert_eq!(
        body["missing_scopes"],
        serde_json::json!(["calendar", "calendar.events"])
    );
    assert_eq!(body["needs_reauth"], true);
    assert!(body["expires_at"].is_string());
    // A user only ever sees their own connection.
    let other: serde_json::Value = app
        .browser(Some(Uuid::new_v4()))
        .get("/api/passport/gmail")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["connected"], false);
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let pre = client
        .request(reqwest::Method::OPTIONS, app.url("/api/passport/gmail"))
        .header("origin", ROBEING)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.headers()["access-control-allow-origin"], ROBEING);
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    let evil = client
        .request(reqwest::Method::OPTIONS, app.url("/api/passport/gmail"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn item_page_shows_account_permissions_and_a_primary_reauth_button() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let resp = browser.get("/passport/gmail").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains(JISOO));
    assert!(html.contains("메일 보내기"));
    assert!(html.contains("캘린더 권한이 없어 일정을 등록할 수 없습니다"));
    assert!(html.contains("class=\"missing\""));
    assert!(
        html.contains("button primary"),
        "재인증 is the primary action when something is missing"
    );
    assert!(html.contains("재인증"));
    assert!(html.contains("/passport/gmail/connect?return_to="));
    assert!(!html.contains("<script"), "no script on the page");

    // After the upgrade everything is granted and the button is secondary.
    let landed = browser
        .reauth(
            Some(&format!("{}/passport/gmail", app.addr)),
            JISOO,
            ALL,
            true,
        )
        .await;
    let html = browser.get(landed.as_str()).await.text().await.unwrap();
    assert!(html.contains("권한이 추가되었습니다"), "upgraded banner");
    assert!(!html.contains("class=\"missing\""));
    assert!(html.contains("button secondary"));
}

#[tokio::test]
async fn item_page_banner_for_every_result() {
    // (seeded scopes, account picked, boxes kept, 계속?, result, banner text)
    type Case<'a> = (
        Option<&'a [&'a str]>,
        &'a str,
        &'a [&'a str],
        bool,
        &'a str,
        &'a str,
    );
    let cases: [Case; 5] = [
        (None, JISOO, ALL, true, "connected", "연결되었습니다"),
        (
            Some(GMAIL_ONLY),
            JISOO,
            ALL,
            true,
            "upgraded",
            "권한이 추가되었습니다",
        ),
        (
            Some(GMAIL_ONLY),
            JISOO,
            GMAIL_ONLY,
            true,
            "partial",
            "캘린더 일정 보기·편집",
        ),
        (
            Some(GMAIL_ONLY),
            JISOO,
            ALL,
            false,
            "denied",
            "아무것도 바뀌지 않았습니다",
        ),
        (
            Some(GMAIL_ONLY),
            MINHO,
            ALL,
            true,
            "account_changed",
            "다른 Google 계정으로 바뀌었습니다",
        ),
    ];
    for (seed, account, granted, allow, result, needle) in cases {
        // A fresh fake Google each time: it remembers what each account granted.
        let app = TestApp::spawn().await;
        let item = format!("{}/passport/gmail", app.addr);
        let user = Uuid::new_v4();
        if let Some(scopes) = seed {
            app.seed_passport(user, JISOO, scopes).await;
        }
        let browser = app.browser(Some(user));
        let landed = browser.reauth(Some(&item), account, granted, allow).await;
        assert_eq!(query_map(&landed)["result"], result);
        let html = browser.get(landed.as_str()).await.text().await.unwrap();
        assert!(html.contains(needle), "{result}: missing {needle}");
        assert!(
            html.contains("role=\"status\""),
            "{result}: banner is announced"
        );
    }
    // A typed `missing=` is never echoed (nor believed).
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let html = browser
        .get("/passport/gmail?passport=gmail&result=partial&missing=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"));
}
