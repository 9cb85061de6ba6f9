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
