//! The fake Google behaves like Google where this service depends on it.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

async fn token(app: &TestApp, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let resp = app
        .client()
        .post(format!("{}/token", app.fake_addr))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn pkce_client_credentials_redirect_uri_and_single_use_codes_are_checked() {
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let redirect = app.settings.redirect_uri("gmail").to_string();

    let mut codes = Vec::new();
    for _ in 0..5 {
        let cb = browser
            .decide(&browser.start(None).await, JISOO, ALL, true)
            .await;
        codes.push(query_map(&cb)["code"].clone());
    }
    let verifier = "x".repeat(43);
    let base = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect.clone()),
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", CLIENT_SECRET.to_string()),
            ("code_verifier", verifier.clone()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };

    // Wrong PKCE verifier.
    let f = as_refs(&base(&codes[0]));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, b) = token(&app, &f).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // The code is spent even though the attempt failed.
    let (s, _) = token(&app, &f).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Wrong secret.
    let mut v = base(&codes[1]);
    v[4].1 = "wrong".into();
    let f: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, b) = token(&app, &f).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // Another redirect URI than the authorize request's.
    let mut v = base(&codes[2]);
    v[2].1 = format!("{redirect}/x");
    let f: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, b) = token(&app, &f).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("redirect_uri_mismatch"))
    );

    // No verifier at all (PKCE downgrade).
    let mut v = base(&codes[3]);
    v.pop();
    let f: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, b) = token(&app, &f).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_tokens_only_with_consent_or_first_grant_and_invalid_grant_after_revocation() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    browser.reauth(None, JISOO, ALL, true).await;
    let refresh = app.refresh_of(user).await.unwrap();

    // The refresh grant works and reports the scopes.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let (s, b) = token(&app, &form).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["scope"].as_str().unwrap().contains("calendar.events"));
    assert!(b.get("refresh_token").is_none());

    // An authorize request without prompt=consent for an account that already
    // has a refresh token gets none.
    let mut authorize = browser.start(None).await;
    let pairs: Vec<(String, String)> = query_map_vec(&authorize)
        .into_iter()
        .filter(|(k, _)| k != "prompt")
        .collect();
    authorize.query_pairs_mut().clear().extend_pairs(pairs);
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let done = browser.callback(&cb).await;
    // The same account granting the same scopes again: nothing changed.
    assert_eq!(query_map(&location(&done))["result"], "unchanged");
    assert_eq!(app.refresh_of(user).await, Some(refresh.clone()), "kept");

    // Revocation: refresh then answers invalid_grant; tokeninfo refuses the access token.
    let access = app.access_of(user).await.unwrap();
    let r = app
        .client()
        .post(format!("{}/revoke", app.fake_addr))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, b) = token(&app, &form).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let ti = app
        .client()
        .post(format!("{}/tokeninfo", app.fake_addr))
        .form(&[("access_token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ti.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn userinfo_and_tokeninfo_answer_like_google() {
    let app = TestApp::spawn().await;
    let (access, _) = app.fake.seed_grant(JISOO, ALL).unwrap();
    let ui: serde_json::Value = app
        .client()
        .get(format!("{}/v1/userinfo", app.fake_addr))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["email"], JISOO);
    assert_eq!(ui["sub"], "110000000000000000001");
    let ti: serde_json::Value = app
        .client()
        .get(format!("{}/tokeninfo?access_token={access}", app.fake_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ti["aud"], CLIENT_ID);
    assert!(ti["scope"].as_str().unwrap().contains("calendar"));
    let bad = app
        .client()
        .get(format!("{}/v1/userinfo", app.fake_addr))
        .bearer_auth("ya29.nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_consent_page_lists_one_checkbox_per_granular_scope_and_the_accounts() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, MINHO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let authorize = browser.start(None).await;
    let html = browser
        .client
        .get(authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        html.matches("type=\"checkbox\"").count(),
        5,
        "7 scopes minus email/profile"
    );
    assert_eq!(
        html.matches(" checked>").count(),
        6,
        "5 boxes ticked + the hinted account"
    );
    assert!(html.contains(JISOO) && html.contains(MINHO));
    assert!(
        html.contains(&format!("value=\"{MINHO}\" checked")),
        "login_hint selects the stored account"
    );
    assert!(!html.contains("<script"));
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_gets_googles_error_page() {
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let authorize = browser.start(None).await;
    for (key, value, code) in [
        (
            "redirect_uri",
            "https://evil.example/cb",
            "redirect_uri_mismatch",
        ),
        ("client_id", "someone-else", "invalid_client"),
    ] {
        let mut u = authorize.clone();
        let pairs: Vec<(String, String)> = query_map_vec(&authorize)
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
        let resp = browser.client.get(u).send().await.unwrap();
        assert!(resp.headers().get("location").is_none());
        assert!(resp.text().await.unwrap().contains(code));
    }
}

/// `GET` or `POST` the fake Calendar's events of `calendar` with a token.
async fn calendar_events(
    app: &TestApp,
    calendar: &str,
    token: &str,
    insert: Option<&serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let url = format!("{}/calendar/v3/calendars/{calendar}/events", app.fake_addr);
    let client = app.client();
    let req = match insert {
        Some(event) => client.post(url).json(event),
        None => client.get(url),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_fake_calendar_lists_the_events_created_in_each_account_calendar() {
    let app = TestApp::spawn().await;
    let (jisoo, _) = app.fake.seed_grant(JISOO, ALL).unwrap();
    let (minho, _) = app.fake.seed_grant(MINHO, ALL).unwrap();
    let (gmail_only, _) = app.fake.seed_grant(JISOO, GMAIL_ONLY).unwrap();
    let (readonly, _) = app.fake.seed_grant(JISOO, &["calendar.readonly"]).unwrap();

    let (status, empty) = calendar_events(&app, "primary", &jisoo, None).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["kind"], "calendar#events");
    assert_eq!(empty["items"], serde_json::json!([]));

    let checkup = serde_json::json!({
        "summary": "검진",
        "location": "인천 연수구 갯벌로156",
        "start": {"dateTime": "2025-11-24T07:40:00+09:00", "timeZone": "Asia/Seoul"},
        "end": {"dateTime": "2025-11-24T12:00:00+09:00", "timeZone": "Asia/Seoul"},
    });
    let (status, created) = calendar_events(&app, "primary", &jisoo, Some(&checkup)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let mut other = checkup.clone();
    other["summary"] = "민호의 일정".into();
    let (status, _) = calendar_events(&app, "primary", &minho, Some(&other)).await;
    assert_eq!(status, StatusCode::OK);

    // Jisoo's calendar holds her event only, by "primary" or by her address,
    // with a read-only token too; in Google's shape.
    for (calendar, token) in [("primary", &jisoo), (JISOO, &jisoo), ("primary", &readonly)] {
        let (status, list) = calendar_events(&app, calendar, token, None).await;
        assert_eq!(status, StatusCode::OK, "{calendar}: {list}");
        assert_eq!(list["kind"], "calendar#events");
        assert_eq!(list["summary"], JISOO);
        assert_eq!(list["timeZone"], "Asia/Seoul");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{list}");
        assert_eq!(items[0]["id"], created["id"]);
        assert_eq!(items[0]["summary"], "검진");
        assert_eq!(items[0]["location"], "인천 연수구 갯벌로156");
        assert_eq!(items[0]["start"]["dateTime"], "2025-11-24T07:40:00+09:00");
        assert_eq!(items[0]["end"]["dateTime"], "2025-11-24T12:00:00+09:00");
        assert_eq!(items[0]["status"], "confirmed");
    }
    let (_, list) = calendar_events(&app, "primary", &minho, None).await;
    assert_eq!(list["items"][0]["summary"], "민호의 일정");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.fake.calendar_events_of(JISOO).len(), 1);

    // Google's refusals: no Calendar scope, a bad token, another's calendar,
    // and a read-only token cannot insert.
    let (status, body) = calendar_events(&app, "primary", &gmail_only, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
    let (status, body) = calendar_events(&app, "primary", "ya29.nonsense", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    let (status, body) = calendar_events(&app, MINHO, &jisoo, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    let (status, _) = calendar_events(&app, "primary", &readonly, Some(&checkup)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.fake.calls("calendar.events.list"), 8);
}
