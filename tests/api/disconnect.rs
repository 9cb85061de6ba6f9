//! Disconnect: revoke at Google, delete the row, audit; a failed revoke is
//! reported and the row is still removed.

use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use uuid::Uuid;

async fn internal_delete(app: &TestApp, user: &str) -> (StatusCode, serde_json::Value) {
    let resp = app
        .client()
        .delete(app.url(&format!("/internal/passport/gmail/users/{user}")))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn internal_disconnect_revokes_at_google_and_deletes_the_row() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (_, refresh) = app.seed_passport(user, JISOO, ALL).await;
    let (status, body) = internal_delete(&app, &user.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disconnected"], true);
    assert_eq!(body["revocation"], "revoked");
    assert!(app.row(user).await.is_none());
    assert_eq!(app.fake.calls("revoke"), 1);
    let ev = &app.events(user).await[0];
    assert_eq!(ev.kind, EventKind::Disconnected);
    assert_eq!(ev.email_before.as_deref(), Some(JISOO));
    assert!(ev.error_code.is_none());

    // The grant is gone at Google: its refresh token no longer works.
    let resp = app
        .client()
        .post(format!("{}/token", app.fake_addr))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // The token API now says not_connected; disconnecting again is 404.
    assert_eq!(app.token(user, &[]).await.0, StatusCode::NOT_FOUND);
    let (status, body) = internal_delete(&app, &user.to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_connected"))
    );
}

#[tokio::test]
async fn a_failing_revoke_is_reported_and_the_row_is_still_removed() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.fake.set_behaviour(Behaviour {
        revoke_unavailable: true,
        ..Behaviour::default()
    });
    let (status, body) = internal_delete(&app, &user.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revocation"], "revoke_failed");
    assert!(body["revoke_error"]
        .as_str()
        .unwrap()
        .contains("unavailable"));
    assert!(app.row(user).await.is_none());
    let ev = &app.events(user).await[0];
    assert_eq!(
        (ev.kind.as_str(), ev.error_code.as_deref()),
        ("disconnected", Some("revoke_failed"))
    );
}

#[tokio::test]
async fn an_already_revoked_grant_is_reported_as_such() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.fake.revoke_account(JISOO);
    let (status, body) = internal_delete(&app, &user.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revocation"], "already_invalid");
    assert!(app.row(user).await.is_none());
}

#[tokio::test]
async fn internal_disconnect_refuses_bad_ids_and_keys() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.snapshot().await;
    let (status, body) = internal_delete(&app, "not-a-uuid").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let resp = app
        .client()
        .delete(app.url(&format!("/internal/passport/gmail/users/{user}")))
        .bearer_auth(session_for(user))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn the_user_disconnects_from_the_item_page() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));
    let page = browser.get("/passport/gmail").await.text().await.unwrap();
    assert!(page.contains("href=\"/passport/gmail/disconnect\""));
    assert!(page.contains("연결 해제"));
    let confirm = browser
        .get("/passport/gmail/disconnect")
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("action=\"/passport/gmail/disconnect\""));

    let resp = browser
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .header("origin", &app.addr)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, "/passport/gmail?passport=gmail&result=disconnected");
    assert!(app.row(user).await.is_none());
    let page = browser.get(&to).await.text().await.unwrap();
    assert!(page.contains("연결을 해제했습니다"));
    assert!(page.contains("연결되지 않음"));
    assert!(
        !page.contains("연결 해제 <span"),
        "no disconnect button when not connected"
    );
}

#[tokio::test]
async fn cross_site_disconnects_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));
    let before = app.snapshot().await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("referer", "https://evil.example/page"),
    ] {
        let resp = browser
            .client
            .post(app.url("/passport/gmail/disconnect"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{header}");
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("다른 사이트에서 온 요청"));
    }
    // Neither Origin nor Sec-Fetch-Site nor Referer: refused too.
    let resp = browser
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.fake.calls("revoke"), 0);
}
