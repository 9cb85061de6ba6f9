//! The token API for skills: every answer code, the refresh paths, single flight.

use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use auth_server::scopes::ScopeSet;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_fresh_token_is_handed_out_without_calling_google() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (access, _) = app.seed_passport(user, JISOO, ALL).await;
    let (status, body, headers) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_token"], access);
    assert_eq!(body["email"], JISOO);
    assert_eq!(body["scopes"], json!(ALL));
    assert!(body["expires_at"].is_string());
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(app.fake.calls("token"), 0);

    // Full URLs work as well as short names, and no scopes means "any token".
    let (status, _, _) = app
        .token(
            user,
            &[
                "https://www.googleapis.com/auth/calendar.events",
                "gmail.send",
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_stored_and_audited() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (old_access, refresh) = app.seed_passport(user, JISOO, ALL).await;
    // Expires within the 5-minute margin: refreshed first.
    sqlx::query(
        "UPDATE gmail_token SET expires_at = now() + interval '2 minutes' WHERE user_id = $1",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_access = body["access_token"].as_str().unwrap().to_string();
    assert_ne!(new_access, old_access);
    let exp: chrono::DateTime<chrono::Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        exp > chrono::Utc::now() + chrono::Duration::minutes(55),
        "valid for well over the margin"
    );
    assert_eq!(app.fake.calls("token.refresh_token"), 1);

    let row = app.row(user).await.unwrap();
    assert_eq!(app.access_of(user).await, Some(new_access.clone()));
    assert_eq!(
        app.refresh_of(user).await,
        Some(refresh.clone()),
        "kept: Google sent none"
    );
    assert!(row.last_refreshed_at.is_some());
    assert_eq!(app.events(user).await[0].kind, EventKind::Refreshed);

    // The next call uses the stored token.
    let (_, again, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(again["access_token"], new_access);
    assert_eq!(app.fake.calls("token.refresh_token"), 1);

    // The token works at the fake Calendar API: the seed's event is accepted.
    let event = json!({
        "summary": "검진",
        "location": "인천 연수구 갯벌로156",
        "start": {"dateTime": "2025-11-24T07:40:00+09:00", "timeZone": "Asia/Seoul"},
        "end": {"dateTime": "2025-11-24T12:00:00+09:00", "timeZone": "Asia/Seoul"},
    });
    let resp = app
        .client()
        .post(format!(
            "{}/calendar/v3/calendars/primary/events",
            app.fake_addr
        ))
        .bearer_auth(&new_access)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.fake.calendar_events()[0]["summary"], "검진");
}

#[tokio::test]
async fn refresh_stores_the_scope_list_google_reports() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    // The row claims Calendar, but the grant at Google is Gmail only (the
    // incident: someone edited gmail_token.scopes by hand).
    let (_, refresh) = app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let all = ScopeSet::parse_known(ALL.iter().copied()).unwrap();
    sqlx::query("UPDATE gmail_token SET scopes = $2, expires_at = now() WHERE user_id = $1")
        .bind(user)
        .bind(all.to_json())
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "scope_missing");
    let row = app.row(user).await.unwrap();
    assert_eq!(
        ScopeSet::from_json(row.scopes.as_ref()).short_names(),
        GMAIL_ONLY,
        "corrected from Google"
    );
    assert_eq!(app.refresh_of(user).await, Some(refresh.clone()));
    let _ = row;
}

#[tokio::test]
async fn not_connected_is_404_with_the_reauth_url() {
    let app = TestApp::spawn().await;
    let (status, body, _) = app.token(Uuid::new_v4(), &["calendar.events"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_connected");
    assert_eq!(
        body["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
}

#[tokio::test]
async fn scope_missing_names_the_scopes_and_carries_the_reauth_url() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let before = app.snapshot().await;
    let (status, body, _) = app.token(user, &["calendar.events", "gmail.send"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "scope_missing");
    assert_eq!(body["missing"], json!(["calendar.events"]));
    assert_eq!(
        body["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("calendar.events"));
    assert!(body.get("access_token").is_none());
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.fake.calls("token"), 0);
}

#[tokio::test]
async fn invalid_grant_marks_the_row_and_answers_409_until_the_next_consent() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake.revoke_account(JISOO);

    let (status, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "reauth_required");
    assert_eq!(
        body["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
    let row = app.row(user).await.expect("the row is kept");
    assert_eq!(row.status, ConnectionStatus::ReauthRequired);
    assert!(row
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("invalid_grant"));
    let ev = &app.events(user).await[0];
    assert_eq!(
        (ev.kind.as_str(), ev.error_code.as_deref()),
        ("reauth_required", Some("invalid_grant"))
    );

    // No more calls to Google while it stays broken.
    let calls = app.fake.calls("token");
    let (status, _, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.fake.calls("token"), calls);

    // The status API shows it too.
    let st: serde_json::Value = app
        .browser(Some(user))
        .get("/api/passport/gmail")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(st["status"], "reauth_required");
    assert_eq!(st["needs_reauth"], true);

    // 재인증 makes it active again, and the token API answers 200.
    app.browser(Some(user)).reauth(None, JISOO, ALL, true).await;
    let (status, _, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_row_without_refresh_token_needs_reauth() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    sqlx::query(
        "UPDATE gmail_token SET refresh_token = NULL, expires_at = now() WHERE user_id = $1",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, body, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "reauth_required");
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::ReauthRequired
    );
    assert_eq!(app.fake.calls("token"), 0);
}

#[tokio::test]
async fn google_5xx_is_retried_then_upstream_unavailable_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    let row_before = format!("{:?}", app.row(user).await.unwrap());
    let access_before = app.row(user).await.unwrap().access_token;
    app.fake.set_behaviour(Behaviour {
        token_unavailable: true,
        ..Behaviour::default()
    });

    let (status, body, headers) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        app.fake.calls("token.refresh_token.attempt"),
        3,
        "bounded retries"
    );
    let row = app.row(user).await.unwrap();
    assert_eq!(format!("{row:?}"), row_before);
    assert_eq!(row.access_token, access_before);
    assert_eq!(app.events(user).await[0].kind, EventKind::RefreshFailed);
}

#[tokio::test]
async fn a_recovered_google_is_asked_again_at_once() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake.set_behaviour(Behaviour {
        token_unavailable: true,
        ..Behaviour::default()
    });
    let (status, _, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    app.fake.set_behaviour(Behaviour::default());
    let (status, _, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_google_timeout_is_upstream_unavailable() {
    let app = TestApp::spawn_with(&[("GOOGLE_HTTP_TIMEOUT_SECS", "1")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    let before = app.row(user).await.unwrap().access_token;
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 1500,
        ..Behaviour::default()
    });
    let (status, body, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
    assert_eq!(app.row(user).await.unwrap().access_token, before);
}

#[tokio::test]
async fn one_refresh_for_many_concurrent_callers_across_two_instances() {
    let a = TestApp::spawn().await;
    let b = a.sibling(&[]).await;
    let user = Uuid::new_v4();
    a.seed_passport(user, JISOO, ALL).await;
    a.expire(user).await;
    // A slow Google widens the window in which callers pile up.
    a.fake.set_behaviour(Behaviour {
        token_delay_ms: 300,
        ..Behaviour::default()
    });

    let mut tasks = Vec::new();
    for i in 0..120 {
        let url = if i % 2 == 0 {
            a.url("/internal/passport/gmail/token")
        } else {
            b.url("/internal/passport/gmail/token")
        };
        let client = a.client();
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(INTERNAL_KEY)
                .json(&json!({"user_id": user, "scopes": ["calendar.events"]}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body["access_token"].as_str().map(str::to_string))
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let (status, token) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        tokens.insert(token.unwrap());
    }
    assert_eq!(
        a.fake.calls("token.refresh_token"),
        1,
        "exactly one upstream refresh"
    );
    assert_eq!(tokens.len(), 1, "every caller got the same fresh token");
    let refreshed = a
        .events(user)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Refreshed)
        .count();
    assert_eq!(refreshed, 1);
}

#[tokio::test]
async fn bad_requests_get_bad_request_and_change_nothing() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.snapshot().await;
    let client = app.client();
    let url = app.url("/internal/passport/gmail/token");
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "malformed JSON",
            "{\"user_id\": ".into(),
            StatusCode::BAD_REQUEST,
        ),
        ("not an object", "[1,2]".into(), StatusCode::BAD_REQUEST),
        (
            "non-UUID user",
            json!({"user_id": "42", "scopes": []}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "numeric user",
            json!({"user_id": 42}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown scope",
            json!({"user_id": user, "scopes": ["calendar.evnts"]}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "foreign scope URL",
            json!({"user_id": user, "scopes": ["https://evil.example/auth/x"]}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "scope not a string",
            json!({"user_id": user, "scopes": [1]}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        ("empty body", String::new(), StatusCode::BAD_REQUEST),
        (
            "oversized body",
            json!({"user_id": user, "pad": "x".repeat(40_000)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, expected) in cases {
        let resp = client
            .post(&url)
            .bearer_auth(INTERNAL_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{what}");
        let body: serde_json::Value = resp
            .json()
            .await
            .unwrap_or_else(|_| panic!("{what}: JSON body"));
        assert_eq!(body["error"], "bad_request", "{what}");
        assert!(body.get("access_token").is_none());
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn keys_and_sessions_do_not_open_each_others_routes() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let client = app.client();
    let url = app.url("/internal/passport/gmail/token");
    let body = json!({"user_id": user, "scopes": []});
    for (what, req) in [
        ("no key", client.post(&url).json(&body)),
        (
            "wrong key",
            client
                .post(&url)
                .bearer_auth("test-internal-key-0123456780")
                .json(&body),
        ),
        (
            "key prefix",
            client
                .post(&url)
                .bearer_auth("test-internal-key")
                .json(&body),
        ),
        (
            "user session",
            client.post(&url).bearer_auth(session_for(user)).json(&body),
        ),
        (
            "session cookie",
            client
                .post(&url)
                .header("cookie", format!("access_token={}", session_for(user)))
                .json(&body),
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["error"], "unauthorized", "{what}");
        assert!(b.get("access_token").is_none());
    }
    // The internal key does not open user routes.
    let r = client
        .get(app.url("/api/passport/gmail"))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .get(app.url("/passport/gmail"))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Several keys may be configured; each works.
    let two = TestApp::spawn_with(&[(
        "INTERNAL_API_KEYS",
        "first-_P3u18cx5j4PKOBKijRX2epN5pGiT52A,second-Q7tsPw682efsOPUoQniUGCsXDSo9Nuzf",
    )])
    .await;
    two.seed_passport(user, JISOO, ALL).await;
    for k in [
        "first-_P3u18cx5j4PKOBKijRX2epN5pGiT52A",
        "second-Q7tsPw682efsOPUoQniUGCsXDSo9Nuzf",
    ] {
        let r = client
            .post(two.url("/internal/passport/gmail/token"))
            .bearer_auth(k)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{k}");
    }
}

#[tokio::test]
async fn token_answers_are_counted_in_metrics() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    app.token(user, &["calendar.events"]).await;
    app.token(user, &["gmail.send"]).await;
    let refreshing = Uuid::new_v4();
    app.seed_passport(refreshing, MINHO, ALL).await;
    app.expire(refreshing).await;
    assert_eq!(app.token(refreshing, &[]).await.0, StatusCode::OK);
    let m = app.metrics().await;
    assert!(
        m.contains("passport_token_requests_total{code=\"scope_missing\",caller="),
        "{m}"
    );
    assert!(
        m.contains("passport_token_requests_total{code=\"ok\",caller="),
        "{m}"
    );
    assert!(
        m.contains("passport_refresh_total{outcome=\"refreshed\"}"),
        "{m}"
    );
}
