//! Who is asking: the ro-being session JWT.

use crate::helpers::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

fn sign(claims: serde_json::Value, alg: Algorithm, secret: &str) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn exp(minutes: i64) -> i64 {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).timestamp()
}

fn bad_tokens() -> Vec<(&'static str, String)> {
    let user = Uuid::new_v4().to_string();
    let good = sign(
        json!({"sub": user, "exp": exp(10)}),
        Algorithm::HS256,
        JWT_SECRET,
    );
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    let header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let payload = good.split('.').nth(1).unwrap().to_string();
    vec![
        (
            "wrong secret",
            sign(
                json!({"sub": user, "exp": exp(10)}),
                Algorithm::HS256,
                "another-secret-0123456789-0123456789",
            ),
        ),
        (
            "other algorithm",
            sign(
                json!({"sub": user, "exp": exp(10)}),
                Algorithm::HS512,
                JWT_SECRET,
            ),
        ),
        ("alg none", format!("{header_none}.{payload}.")),
        (
            "expired",
            sign(
                json!({"sub": user, "exp": exp(-10)}),
                Algorithm::HS256,
                JWT_SECRET,
            ),
        ),
        (
            "no exp",
            sign(json!({"sub": user}), Algorithm::HS256, JWT_SECRET),
        ),
        (
            "no sub",
            sign(json!({"exp": exp(10)}), Algorithm::HS256, JWT_SECRET),
        ),
        (
            "sub not a uuid",
            sign(
                json!({"sub": "admin", "exp": exp(10)}),
                Algorithm::HS256,
                JWT_SECRET,
            ),
        ),
        (
            "not valid before five minutes from now",
            sign(
                json!({"sub": user, "exp": exp(10), "nbf": exp(5)}),
                Algorithm::HS256,
                JWT_SECRET,
            ),
        ),
        (
            "issued five minutes from now",
            sign(
                json!({"sub": user, "exp": exp(10), "iat": exp(5)}),
                Algorithm::HS256,
                JWT_SECRET,
            ),
        ),
        (
            "an audience, where none is expected",
            sign(
                json!({"sub": user, "exp": exp(10), "aud": "skill-gmail"}),
                Algorithm::HS256,
                JWT_SECRET,
            ),
        ),
        ("tampered signature", tampered),
        ("garbage", "not.a.jwt".to_string()),
    ]
}

#[tokio::test]
async fn bad_sessions_get_401_json_from_the_api() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let before = app.snapshot().await;
    for (what, token) in bad_tokens() {
        for req in [
            client
                .get(app.url("/api/passport/gmail"))
                .bearer_auth(&token),
            client
                .post(app.url("/api/passport/gmail/connect"))
                .bearer_auth(&token),
            client
                .get(app.url("/api/passport/gmail"))
                .header("cookie", format!("access_token={token}")),
        ] {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized", "{what}");
        }
    }
    let none = client
        .get(app.url("/api/passport/gmail"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn bad_sessions_get_the_sign_in_page_on_browser_routes() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let before = app.snapshot().await;
    for (what, token) in bad_tokens() {
        for path in ["/passport/gmail", "/passport/gmail/connect"] {
            let resp = client
                .get(app.url(path))
                .header("cookie", format!("access_token={token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what} {path}");
            let html = resp.text().await.unwrap();
            assert!(html.contains("로그인이 필요합니다"), "{what} {path}");
        }
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_valid_session_works_from_cookie_or_bearer_and_the_cookie_name_is_configurable() {
    let app = TestApp::spawn_with(&[("SESSION_COOKIE_NAME", "rb_session")]).await;
    let user = Uuid::new_v4();
    let jwt = session_for(user);
    let client = app.client();
    let by_cookie = client
        .get(app.url("/api/passport/gmail"))
        .header("cookie", format!("rb_session={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let by_bearer = client
        .get(app.url("/api/passport/gmail"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    let wrong_name = client
        .get(app.url("/api/passport/gmail"))
        .header("cookie", format!("access_token={jwt}"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_name.status(), StatusCode::UNAUTHORIZED);
}

/// `GET /api/passport/gmail` with these credentials: the status, and whether
/// the answer is about a connected user.
async fn status_with(
    app: &TestApp,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> (StatusCode, Option<bool>) {
    let mut req = app.client().get(app.url("/api/passport/gmail"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("access_token={c}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body["connected"].as_bool())
}

fn session(claims: serde_json::Value) -> String {
    sign(claims, Algorithm::HS256, JWT_SECRET)
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_refused_beyond_the_leeway() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4().to_string();
    let in_secs = |s: i64| chrono::Utc::now().timestamp() + s;
    for (what, claim, at, ok) in [
        ("nbf past", "nbf", in_secs(-60), true),
        ("nbf within the leeway", "nbf", in_secs(10), true),
        ("nbf beyond the leeway", "nbf", in_secs(120), false),
        ("iat past", "iat", in_secs(-60), true),
        ("iat within the leeway", "iat", in_secs(10), true),
        ("iat beyond the leeway", "iat", in_secs(120), false),
    ] {
        let jwt = session(json!({"sub": user, "exp": exp(10), claim: at}));
        let (status, _) = status_with(&app, Some(&jwt), None).await;
        let want = if ok {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, want, "{what}");
    }
}

#[tokio::test]
async fn aud_and_iss_are_checked_as_the_settings_say() {
    let user = Uuid::new_v4().to_string();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"sub": user, "exp": exp(10)});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        session(c)
    };
    // The default, as ro-being signs: no `aud` expected, `iss` not checked.
    let app = TestApp::spawn().await;
    for (what, extra, want) in [
        ("neither", json!({}), StatusCode::OK),
        ("any iss", json!({"iss": "anyone"}), StatusCode::OK),
        (
            "an aud",
            json!({"aud": "auth-server"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an aud list",
            json!({"aud": ["auth-server"]}),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, _) = status_with(&app, Some(&claims(extra)), None).await;
        assert_eq!(status, want, "default: {what}");
    }
    drop(app);
    let app = TestApp::spawn_with(&[
        ("SESSION_JWT_AUDIENCE", "auth-server"),
        ("SESSION_JWT_ISSUER", "https://ro-being.com"),
    ])
    .await;
    let iss = "https://ro-being.com";
    for (what, extra, want) in [
        (
            "both",
            json!({"aud": "auth-server", "iss": iss}),
            StatusCode::OK,
        ),
        (
            "aud among others",
            json!({"aud": ["x", "auth-server"], "iss": iss}),
            StatusCode::OK,
        ),
        ("no aud", json!({"iss": iss}), StatusCode::UNAUTHORIZED),
        (
            "another aud",
            json!({"aud": "skill-gmail", "iss": iss}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no iss",
            json!({"aud": "auth-server"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another iss",
            json!({"aud": "auth-server", "iss": "https://evil.example"}),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let (status, _) = status_with(&app, Some(&claims(extra)), None).await;
        assert_eq!(status, want, "configured: {what}");
    }
}

#[tokio::test]
async fn exp_is_required_and_bounded_by_the_maximum_lifetime_when_set() {
    let user = Uuid::new_v4().to_string();
    let far = session(json!({"sub": user, "exp": exp(60 * 24 * 365)}));
    let hour = session(json!({"sub": user, "exp": exp(59)}));
    let no_exp = session(json!({"sub": user}));
    // Unset (the default): not bounded; `exp` is still required.
    let app = TestApp::spawn().await;
    assert_eq!(status_with(&app, Some(&far), None).await.0, StatusCode::OK);
    assert_eq!(
        status_with(&app, Some(&no_exp), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(app);
    let app = TestApp::spawn_with(&[("SESSION_JWT_MAX_LIFETIME_SECS", "3600")]).await;
    assert_eq!(status_with(&app, Some(&hour), None).await.0, StatusCode::OK);
    assert_eq!(
        status_with(&app, Some(&far), None).await.0,
        StatusCode::UNAUTHORIZED,
        "a session living longer than the maximum is refused"
    );
}

#[tokio::test]
async fn a_bad_cookie_does_not_hide_a_valid_bearer_nor_a_bad_bearer_a_valid_cookie() {
    let app = TestApp::spawn().await;
    let jisoo = Uuid::new_v4();
    app.seed_passport(jisoo, JISOO, GMAIL_ONLY).await;
    let good = session_for(jisoo);
    for (what, bad) in bad_tokens() {
        assert_eq!(
            status_with(&app, Some(&good), Some(&bad)).await,
            (StatusCode::OK, Some(true)),
            "valid Bearer, cookie {what}"
        );
        assert_eq!(
            status_with(&app, Some(&bad), Some(&good)).await,
            (StatusCode::OK, Some(true)),
            "valid cookie, Bearer {what}"
        );
    }
    // Both valid, for the same user: fine; for two users: refused, since
    // the request cannot be said to act for either.
    assert_eq!(
        status_with(&app, Some(&good), Some(&good)).await,
        (StatusCode::OK, Some(true))
    );
    let other = session_for(Uuid::new_v4());
    assert_eq!(
        status_with(&app, Some(&good), Some(&other)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, Some(&other), Some(&good)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_verified_while_valid_is_refused_once_expired() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4().to_string();
    let exp = chrono::Utc::now().timestamp() + 2;
    let jwt = session(json!({"sub": user, "exp": exp}));
    // Verified, and so remembered, while valid.
    for _ in 0..3 {
        assert_eq!(status_with(&app, Some(&jwt), None).await.0, StatusCode::OK);
    }
    // Past `exp` and the verifier's leeway it must be refused, cached or not.
    crate::wait::wait_until(
        "the expired session to be refused",
        std::time::Duration::from_secs(60),
        async || status_with(&app, Some(&jwt), None).await.0 == StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(chrono::Utc::now().timestamp() > exp);
    assert_eq!(
        status_with(&app, None, Some(&jwt)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_cached_session_with_one_byte_of_its_signature_changed_is_refused() {
    let app = TestApp::spawn().await;
    let good = session_for(Uuid::new_v4());
    for _ in 0..2 {
        assert_eq!(status_with(&app, Some(&good), None).await.0, StatusCode::OK);
    }
    let sig_at = good.rfind('.').unwrap() + 1;
    for i in [sig_at, sig_at + 10, sig_at + 20, good.len() - 2] {
        let mut bytes = good.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        assert_eq!(
            status_with(&app, Some(&forged), None).await.0,
            StatusCode::UNAUTHORIZED,
            "byte {i} changed"
        );
    }
    assert_eq!(status_with(&app, Some(&good), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn two_cached_sessions_for_two_users_are_still_refused_together() {
    let app = TestApp::spawn().await;
    let (jisoo, other) = (session_for(Uuid::new_v4()), session_for(Uuid::new_v4()));
    for jwt in [&jisoo, &other] {
        assert_eq!(status_with(&app, Some(jwt), None).await.0, StatusCode::OK);
        assert_eq!(status_with(&app, None, Some(jwt)).await.0, StatusCode::OK);
    }
    assert_eq!(
        status_with(&app, Some(&jisoo), Some(&other)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, Some(&other), Some(&jisoo)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, Some(&jisoo), Some(&jisoo)).await.0,
        StatusCode::OK
    );
}
