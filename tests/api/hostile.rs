//! The hostile-input suite: one table of attacks across every route. Each
//! asserts the status, that the body leaks nothing, and that the database is
//! unchanged.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

struct Case {
    name: &'static str,
    method: Method,
    /// Path and query on the app (or a full URL).
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    expect: StatusCode,
    /// Expired attempts are deleted when presented: the only allowed change.
    deletes_expired_state: bool,
}

fn case(name: &'static str, method: Method, target: impl Into<String>, expect: StatusCode) -> Case {
    Case {
        name,
        method,
        target: target.into(),
        headers: Vec::new(),
        body: None,
        expect,
        deletes_expired_state: false,
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    fn session(self, jwt: &str) -> Self {
        self.header("cookie", format!("access_token={jwt}"))
    }
    fn json(mut self, v: serde_json::Value) -> Self {
        self.body = Some(v.to_string());
        self.header("content-type", "application/json")
    }
    fn raw_body(mut self, b: impl Into<String>) -> Self {
        self.body = Some(b.into());
        self
    }
    fn key(self) -> Self {
        self.header("authorization", format!("Bearer {INTERNAL_KEY}"))
    }
}

fn jwt_with(header_b64: &str, claims: serde_json::Value, sign: bool) -> String {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    if sign {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"attacker-chosen-secret-0123456789abcdef"),
        )
        .unwrap();
        return token;
    }
    format!("{header_b64}.{payload}.")
}

#[tokio::test]
async fn hostile_requests_are_refused_leak_nothing_and_change_nothing() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_BROWSER_IP_PER_MIN", "100000"),
        ("RATE_LIMIT_CONNECT_USER_PER_MIN", "100000"),
    ])
    .await;
    let victim = Uuid::new_v4();
    let attacker = Uuid::new_v4();
    let (victim_access, victim_refresh) = app.seed_passport(victim, JISOO, GMAIL_ONLY).await;
    let victim_jwt = session_for(victim);
    let attacker_jwt = session_for(attacker);
    let victim_browser = app.browser(Some(victim));

    // A finished flow (for replay), one in flight (to attack), one expired.
    let done_auth = victim_browser.start(None).await;
    let done_cb = victim_browser
        .decide(&done_auth, JISOO, GMAIL_ONLY, true)
        .await;
    assert_eq!(
        victim_browser.callback(&done_cb).await.status(),
        StatusCode::FOUND
    );
    let live_auth = victim_browser.start(None).await;
    let live_cb = victim_browser.decide(&live_auth, JISOO, ALL, true).await;
    let live_state = query_map(&live_cb)["state"].clone();
    let live_code = query_map(&live_cb)["code"].clone();
    let live_cookie_name = auth_server::passport::flow::flow_cookie_name(&live_state);
    let exp_auth = victim_browser.start(None).await;
    let exp_state = query_map(&exp_auth)["state"].clone();
    sqlx::query("UPDATE oauth_state SET expires_at = now() - interval '1 minute' WHERE state_hash = sha256($1::bytea)")
        .bind(exp_state.as_bytes())
        .execute(&app.db)
        .await
        .unwrap();

    // An attacker's code minted WITHOUT PKCE, for the same client.
    let mut no_pkce = live_auth.clone();
    let pairs: Vec<(String, String)> = query_map_vec(&live_auth)
        .into_iter()
        .filter(|(k, _)| k != "code_challenge" && k != "code_challenge_method")
        .collect();
    no_pkce.query_pairs_mut().clear().extend_pairs(pairs);
    let attacker_browser = app.browser(Some(attacker));
    let attacker_cb = attacker_browser.decide(&no_pkce, MINHO, ALL, true).await;
    let attacker_code = query_map(&attacker_cb)["code"].clone();

    let cb = |q: &str| format!("/passport/gmail/callback?{q}");
    let alg_none = jwt_with(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        json!({"sub": victim, "exp": 4102444800u64}),
        false,
    );
    let alg_none_upper = jwt_with(
        "eyJhbGciOiJOT05FIiwidHlwIjoiSldUIn0",
        json!({"sub": victim, "exp": 4102444800u64}),
        false,
    );
    let wrong_secret = jwt_with("", json!({"sub": victim, "exp": 4102444800u64}), true);
    let mut tampered = victim_jwt.clone();
    let mid = tampered.find('.').unwrap() + 3;
    tampered.replace_range(
        mid..mid + 1,
        if &tampered[mid..mid + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    let forged_state = "Zm9yZ2VkLXN0YXRlLXRoYXQtbmV2ZXItZXhpc3RlZC1h";

    use StatusCode as S;
    let mut cases = vec![
        // --- state: forged, replayed, expired, cross-user, cross-browser
        case("forged state", Method::GET, cb(&format!("state={forged_state}&code=x")), S::BAD_REQUEST).session(&victim_jwt),
        case("replayed state", Method::GET, done_cb.as_str(), S::BAD_REQUEST).session(&victim_jwt),
        Case { deletes_expired_state: true, ..case("expired state", Method::GET, cb(&format!("state={exp_state}&code=x")), S::BAD_REQUEST) }
            .session(&victim_jwt)
            .header("cookie", format!("{}=x", auth_server::passport::flow::flow_cookie_name(&exp_state))),
        case("state without the flow cookie", Method::GET, live_cb.as_str(), S::FORBIDDEN).session(&victim_jwt),
        case("state with a forged flow cookie", Method::GET, live_cb.as_str(), S::FORBIDDEN)
            .header("cookie", format!("access_token={victim_jwt}; {live_cookie_name}=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        case("cross-user state (attacker session)", Method::GET, live_cb.as_str(), S::FORBIDDEN).session(&attacker_jwt),
        case("state of wrong shape", Method::GET, cb("state=short&code=x"), S::BAD_REQUEST),
        case("empty state", Method::GET, cb("state=&code=x"), S::BAD_REQUEST),
        case("state as SQL", Method::GET, cb("state=%27%3B%20DROP%20TABLE%20gmail_token%3B--&code=x"), S::BAD_REQUEST),
        case("duplicated state", Method::GET, cb(&format!("state={live_state}&state={forged_state}&code={live_code}")), S::BAD_REQUEST),
        case("invalid UTF-8 state", Method::GET, cb("state=%ff%fe%fd&code=x"), S::BAD_REQUEST),
        case("broken percent-encoding", Method::GET, cb("state=%zz%4&code=%"), S::BAD_REQUEST),
        case("huge parameter", Method::GET, cb(&format!("state={forged_state}&code={}", "A".repeat(6000))), S::BAD_REQUEST),
        case("many repeated parameters", Method::GET, cb(&"x=1&".repeat(1200)), S::BAD_REQUEST),
        // --- PKCE: a code minted without a challenge, injected with a forged state
        case("PKCE-less code with forged state", Method::GET, cb(&format!("state={forged_state}&code={attacker_code}")), S::BAD_REQUEST)
            .session(&victim_jwt),
        // --- return_to
        case("return_to other host", Method::GET, "/passport/gmail/connect?return_to=https%3A%2F%2Fevil.example%2F", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to lookalike host", Method::GET, "/passport/gmail/connect?return_to=https%3A%2F%2Fro-being.com.evil.io%2F", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to scheme-relative", Method::GET, "/passport/gmail/connect?return_to=%2F%2Fevil.io%2F", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to https:evil", Method::GET, "/passport/gmail/connect?return_to=https%3Aevil.io", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to backslashes", Method::GET, "/passport/gmail/connect?return_to=https%3A%5C%5Cevil.io", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to userinfo", Method::GET, "/passport/gmail/connect?return_to=https%3A%2F%2Fro-being.com%40evil.io%2F", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to encoded dot", Method::GET, "/passport/gmail/connect?return_to=https%3A%2F%2Fro-being.com%252eevil.io%2F", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to javascript:", Method::GET, "/passport/gmail/connect?return_to=javascript%3Aalert(1)", S::BAD_REQUEST).session(&victim_jwt),
        case("return_to CRLF header injection", Method::GET, "/passport/gmail/connect?return_to=https%3A%2F%2Fro-being.com%2F%0d%0aSet-Cookie%3A%20x%3D1", S::BAD_REQUEST).session(&victim_jwt),
        case("API return_to other host", Method::POST, "/api/passport/gmail/connect", S::BAD_REQUEST)
            .header("authorization", format!("Bearer {victim_jwt}"))
            .json(json!({"return_to": "https://evil.example/"})),
        // --- sessions
        case("alg none JWT", Method::GET, "/api/passport/gmail", S::UNAUTHORIZED).header("authorization", format!("Bearer {alg_none}")),
        case("alg NONE JWT", Method::GET, "/api/passport/gmail", S::UNAUTHORIZED).header("authorization", format!("Bearer {alg_none_upper}")),
        case("JWT signed with another secret", Method::GET, "/api/passport/gmail", S::UNAUTHORIZED).header("authorization", format!("Bearer {wrong_secret}")),
        case("tampered JWT", Method::GET, "/api/passport/gmail", S::UNAUTHORIZED).session(&tampered),
        case("JWT on a page, none alg", Method::GET, "/passport/gmail", S::UNAUTHORIZED).session(&alg_none),
        case("session header injection", Method::GET, "/api/passport/gmail", S::UNAUTHORIZED)
            .header("authorization", "Bearer x\" OR 1=1 --"),
        // --- another user's id on user routes: ignored, never obeyed
        case("status with victim id in query", Method::GET, format!("/api/passport/gmail?user_id={victim}"), S::OK).session(&attacker_jwt),
        case("item page with victim id", Method::GET, format!("/passport/gmail?user_id={victim}"), S::OK).session(&attacker_jwt),
        case("connect with victim id in body", Method::POST, "/api/passport/gmail/connect", S::BAD_REQUEST)
            .header("authorization", format!("Bearer {attacker_jwt}"))
            .json(json!({"user_id": victim})),
        case("disconnect with victim id (attacker has none)", Method::POST, format!("/passport/gmail/disconnect?user_id={victim}"), S::SEE_OTHER)
            .session(&attacker_jwt)
            .header("origin", app.addr.clone()),
        case("cross-site disconnect of the victim", Method::POST, "/passport/gmail/disconnect", S::FORBIDDEN)
            .session(&victim_jwt)
            .header("origin", "https://evil.example"),
        // --- internal API
        case("token without key", Method::POST, "/internal/passport/gmail/token", S::UNAUTHORIZED).json(json!({"user_id": victim})),
        case("token with the victim's session", Method::POST, "/internal/passport/gmail/token", S::UNAUTHORIZED)
            .header("authorization", format!("Bearer {victim_jwt}"))
            .json(json!({"user_id": victim})),
        case("token with SQL user id", Method::POST, "/internal/passport/gmail/token", S::BAD_REQUEST)
            .key()
            .json(json!({"user_id": "' OR '1'='1", "scopes": []})),
        case("token with SQL scope", Method::POST, "/internal/passport/gmail/token", S::BAD_REQUEST)
            .key()
            .json(json!({"user_id": victim, "scopes": ["calendar'); DELETE FROM gmail_token; --"]})),
        case("token with invalid UTF-8 body", Method::POST, "/internal/passport/gmail/token", S::BAD_REQUEST)
            .key()
            .header("content-type", "application/json")
            .raw_body(String::from_utf8_lossy(b"{\"user_id\": \"\xff\xfe\"}").into_owned()),
        case("token with nested junk", Method::POST, "/internal/passport/gmail/token", S::BAD_REQUEST)
            .key()
            .json(json!({"user_id": {"$ne": null}})),
        case("diagnosis with path traversal", Method::GET, "/internal/passport/gmail/users/..%2F..%2Fetc%2Fpasswd/diagnosis", S::BAD_REQUEST).key(),
        case("delete with SQL user id", Method::DELETE, "/internal/passport/gmail/users/1%20OR%201=1", S::BAD_REQUEST).key(),
        case("report with SQL scope", Method::GET, "/internal/passport/gmail/report?missing=calendar%27--", S::BAD_REQUEST).key(),
        // --- providers and paths
        case("provider as SQL", Method::GET, "/passport/gmail'%20OR%201=1--", S::NOT_FOUND).session(&victim_jwt),
        case("provider with CRLF", Method::GET, "/passport/gmail%0d%0aX-Injected:%201/connect", S::NOT_FOUND).session(&victim_jwt),
        case("provider invalid UTF-8", Method::GET, "/passport/%ff%fe", S::NOT_FOUND).session(&victim_jwt),
        // --- unexpected methods
        case("PUT connect", Method::PUT, "/passport/gmail/connect", S::METHOD_NOT_ALLOWED).session(&victim_jwt),
        case("DELETE status API", Method::DELETE, "/api/passport/gmail", S::METHOD_NOT_ALLOWED).session(&victim_jwt),
        case("GET token API", Method::GET, "/internal/passport/gmail/token", S::METHOD_NOT_ALLOWED).key(),
        case("PUT disconnect", Method::PUT, "/passport/gmail/disconnect", S::METHOD_NOT_ALLOWED).session(&victim_jwt),
        case("POST callback", Method::POST, cb(&format!("state={live_state}&code={live_code}")), S::METHOD_NOT_ALLOWED).session(&victim_jwt),
        case("TRACE anything", Method::TRACE, "/healthz", S::METHOD_NOT_ALLOWED),
    ];
    // The victim's own browser with its flow cookie, but an attacker's code
    // minted without PKCE: the exchange sends the victim's verifier and
    // Google refuses the downgrade; nothing is stored.
    cases.push(
        case(
            "PKCE downgrade: PKCE-less code in the victim's flow",
            Method::GET,
            cb(&format!("state={live_state}&code={attacker_code}")),
            S::FOUND,
        )
        .header(
            "cookie",
            format!("access_token={victim_jwt}; {live_cookie_name}=__LIVE_NONCE__"),
        ),
    );
    assert!(cases.len() >= 40, "{} cases", cases.len());

    // The victim's real flow nonce, read from the browser's jar.
    let live_nonce = {
        use reqwest::cookie::CookieStore;
        let url: url::Url = format!("{}/passport/gmail/callback", app.addr)
            .parse()
            .unwrap();
        let header = victim_browser.jar.cookies(&url).unwrap();
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|kv| kv.strip_prefix(&format!("{live_cookie_name}=")))
            .unwrap()
            .to_string()
    };

    let current_access = app.access_of(victim).await.unwrap();
    let current_refresh = app.refresh_of(victim).await.unwrap();
    let forbidden_in_bodies: Vec<String> = vec![
        current_access.clone(),
        current_refresh.clone(),
        victim_access.clone(),
        victim_refresh.clone(),
        "enc:v1".into(),
        "ya29.".into(),
        "1//fake".into(),
        CLIENT_SECRET.into(),
        JWT_SECRET.into(),
        INTERNAL_KEY.into(),
        live_code.clone(),
        attacker_code.clone(),
        "sqlx".into(),
        "relation \"".into(),
        "panicked".into(),
        "syntax error".into(),
        "Set-Cookie: x".into(),
    ];
    let client = app.client();
    let mut before = app.snapshot().await;
    for c in cases {
        let url = if c.target.starts_with("http") {
            c.target.clone()
        } else {
            app.url(&c.target)
        };
        let mut req = client.request(c.method.clone(), &url);
        for (k, v) in &c.headers {
            req = req.header(*k, v.replace("__LIVE_NONCE__", &live_nonce));
        }
        if let Some(b) = &c.body {
            req = req.body(b.clone());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, c.expect, "{}: {body}", c.name);
        for f in &forbidden_in_bodies {
            assert!(!body.contains(f.as_str()), "{}: body leaks `{f}`", c.name);
            assert!(
                !headers.contains(f.as_str()) || f == "enc:v1",
                "{}: headers leak `{f}`",
                c.name
            );
        }
        assert!(
            !headers.to_ascii_lowercase().contains("x-injected"),
            "{}",
            c.name
        );
        if c.name.starts_with("status with victim id") {
            assert!(
                !body.contains(JISOO) && body.contains("\"connected\":false"),
                "{}: {body}",
                c.name
            );
        }
        if c.name.starts_with("item page with victim id") {
            assert!(!body.contains(JISOO), "{}", c.name);
        }
        if c.name.starts_with("PKCE downgrade") {
            let landed = url::Url::parse(&headers_location(&headers))
                .unwrap_or_else(|_| panic!("{headers}"));
            assert_eq!(query_map(&landed)["result"], "error", "{}", c.name);
            // The attempt itself is consumed, nothing else changes.
            let after = app.snapshot().await;
            assert_eq!(after.tokens, before.tokens, "{}", c.name);
            assert_eq!(after.events, before.events, "{}", c.name);
            before = after;
            continue;
        }
        let after = app.snapshot().await;
        assert_eq!(
            after.tokens, before.tokens,
            "{}: gmail_token changed",
            c.name
        );
        assert_eq!(
            after.events, before.events,
            "{}: passport_event changed",
            c.name
        );
        if c.deletes_expired_state {
            assert!(after.states.len() < before.states.len(), "{}", c.name);
            before = after;
        } else {
            assert_eq!(
                after.states, before.states,
                "{}: oauth_state changed",
                c.name
            );
        }
    }
    // After all that, the victim's connection is intact.
    assert_eq!(app.refresh_of(victim).await, Some(current_refresh.clone()));
    assert_eq!(app.row(victim).await.unwrap().email.as_deref(), Some(JISOO));
    assert!(app.row(attacker).await.is_none());
}

fn headers_location(debug_headers: &str) -> String {
    let start = debug_headers
        .find("\"location\": \"")
        .expect("a Location header")
        + "\"location\": \"".len();
    let end = debug_headers[start..].find('"').unwrap() + start;
    debug_headers[start..end].to_string()
}
