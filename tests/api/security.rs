//! Security properties (RFC 9700 bar): tokens encrypted at rest, key
//! rotation, no secret in logs, cookie flags, abuse limits.

use std::process::Stdio;
use std::time::Duration;

use crate::doctor::run_cli_env;
use crate::helpers::*;
use auth_server::crypto::{parse_keys, Field, TokenCipher};
use auth_server::store::gmail_token;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use uuid::Uuid;

async fn dump(app: &TestApp) -> String {
    let mut out = String::new();
    for table in ["gmail_token", "oauth_state", "passport_event"] {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t"
        )))
        .fetch_all(&app.db)
        .await
        .unwrap();
        out.push_str(&rows.join("\n"));
    }
    out
}

#[tokio::test]
async fn no_token_is_stored_in_the_clear() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    browser.reauth(None, JISOO, ALL, true).await;
    // A consent in flight too (its PKCE verifier is stored).
    let authorize = browser.start(None).await;
    app.expire(user).await;
    let (status, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::OK);
    let issued_access = body["access_token"].as_str().unwrap().to_string();

    let table = dump(&app).await;
    let secrets = app.fake.issued_secrets();
    assert!(
        secrets.len() >= 4,
        "codes, access and refresh tokens were issued"
    );
    for s in secrets.iter().chain([&issued_access]) {
        assert!(
            !table.contains(s.as_str()),
            "secret found in the database dump"
        );
    }
    // The stored values are envelopes naming the active key, bound to the row.
    let row = app.row(user).await.unwrap();
    for v in [
        row.access_token.as_deref().unwrap(),
        row.refresh_token.as_deref().unwrap(),
    ] {
        assert!(v.starts_with("enc:v1:t1:"), "{v}");
    }
    // The verifier in flight is sealed as well.
    let challenge = query_map(&authorize)["code_challenge"].clone();
    let verifier: String =
        sqlx::query_scalar("SELECT pkce_verifier FROM oauth_state WHERE done_at IS NULL LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(verifier.starts_with("enc:v1:t1:"));
    assert!(!table.contains(&challenge) || challenge.len() < 10);

    // A ciphertext copied to another user's row does not decrypt.
    let other = Uuid::new_v4();
    app.seed_passport(other, MINHO, ALL).await;
    sqlx::query("UPDATE gmail_token SET access_token = $1 WHERE user_id = $2")
        .bind(row.access_token.as_deref().unwrap())
        .bind(other)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body, _) = app.token(other, &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("ya29"), "{body}");
}

#[tokio::test]
async fn rows_sealed_with_an_unknown_key_give_a_clear_error_not_a_crash() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let gone = TokenCipher::new(
        &parse_keys("gone:R29uZSBrZXkgdGhhdCBpcyBubyBsb25nZXIgc2V0ISE=").unwrap(),
        false,
    );
    app.seed_passport(user, JISOO, ALL).await;
    sqlx::query("UPDATE gmail_token SET access_token = $1 WHERE user_id = $2")
        .bind(gone.seal(user, Field::AccessToken, "ya29.lost"))
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();
    let (status, body, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "internal");
    assert!(
        body["message"].as_str().unwrap().contains("key `gone`"),
        "{body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("TOKEN_ENCRYPTION_KEYS"));
    // The service is still up for everybody else.
    let ok = Uuid::new_v4();
    app.seed_passport(ok, MINHO, ALL).await;
    assert_eq!(app.token(ok, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn rotate_keys_reseals_every_row_under_the_active_key() {
    let app = TestApp::spawn().await;
    let old = TokenCipher::new(&parse_keys(KEY_T0).unwrap(), false);
    let mut expected = Vec::new();
    // 7 rows under the old key, 3 in plaintext as the old service wrote them.
    for i in 0..10 {
        let user = Uuid::new_v4();
        let (access, refresh) = (format!("ya29.rot-{i}"), format!("1//rot-{i}"));
        let (a, r) = if i < 7 {
            (
                old.seal(user, Field::AccessToken, &access),
                old.seal(user, Field::RefreshToken, &refresh),
            )
        } else {
            (access.clone(), refresh.clone())
        };
        sqlx::query("INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes) VALUES ($1, $2, $3, '[]')")
            .bind(user)
            .bind(a)
            .bind(r)
            .execute(&app.db)
            .await
            .unwrap();
        expected.push((user, access, refresh));
    }
    let out = run_cli_env(&app, &["rotate-keys", "--batch", "3"], &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("10 rows scanned, 10 re-encrypted"),
        "{stdout}"
    );
    for (user, access, refresh) in &expected {
        let row = gmail_token::find(&app.db, *user).await.unwrap().unwrap();
        assert!(row
            .access_token
            .as_deref()
            .unwrap()
            .starts_with("enc:v1:t1:"));
        assert!(row
            .refresh_token
            .as_deref()
            .unwrap()
            .starts_with("enc:v1:t1:"));
        assert_eq!(app.access_of(*user).await.as_deref(), Some(access.as_str()));
        assert_eq!(
            app.refresh_of(*user).await.as_deref(),
            Some(refresh.as_str())
        );
    }
    // Now the old key can go.
    let only_new = run_cli_env(&app, &["rotate-keys"], &[("TOKEN_ENCRYPTION_KEYS", KEY_T1)]).await;
    assert!(only_new.status.success());
    assert!(
        String::from_utf8_lossy(&only_new.stdout).contains("0 re-encrypted, 10 already current")
    );

    // A row under a key nobody has is reported, and the command fails.
    let stranger = TokenCipher::new(
        &parse_keys("zz:U3RyYW5nZXIga2V5LCBub2JvZHkgaGFzIGl0LiBvayE=").unwrap(),
        false,
    );
    let lost = Uuid::new_v4();
    sqlx::query("INSERT INTO gmail_token (user_id, access_token) VALUES ($1, $2)")
        .bind(lost)
        .bind(stranger.seal(lost, Field::AccessToken, "ya29.x"))
        .execute(&app.db)
        .await
        .unwrap();
    let out = run_cli_env(&app, &["rotate-keys"], &[]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&lost.to_string()));
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_key_unless_plaintext_is_allowed() {
    let app = TestApp::spawn().await;
    let out = run_cli_env(&app, &["serve"], &[("TOKEN_ENCRYPTION_KEYS", "")]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEN_ENCRYPTION_KEYS is not set"));

    // With ALLOW_PLAINTEXT_TOKENS=true it starts, and warns.
    let (mut child, lines) = spawn_server(
        &app,
        &[
            ("TOKEN_ENCRYPTION_KEYS", ""),
            ("ALLOW_PLAINTEXT_TOKENS", "true"),
        ],
    )
    .await;
    child.kill().await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("ALLOW_PLAINTEXT_TOKENS=true"), "{text}");
    assert!(text.contains("UNENCRYPTED"), "{text}");
}

/// Start `auth-server serve` with the test app's settings on a free port;
/// returns once it listens, with the lines logged so far.
pub async fn spawn_server(
    app: &TestApp,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, Vec<String>) {
    let (child, lines, _) = spawn_server_with(app, extra, |_| {}).await;
    (child, lines)
}

/// [`spawn_server`], with a last say on the command (e.g. its resource
/// limits); also returns the address it listens on.
pub async fn spawn_server_with(
    app: &TestApp,
    extra: &[(&str, &str)],
    configure: impl FnOnce(&mut tokio::process::Command),
) -> (tokio::process::Child, Vec<String>, String) {
    let (child, lines, bind, _later) = spawn_server_logging(app, extra, configure).await;
    (child, lines, bind)
}

/// [`spawn_server_with`], also returning the lines the server logs after
/// it listens.
pub async fn spawn_server_logging(
    app: &TestApp,
    extra: &[(&str, &str)],
    configure: impl FnOnce(&mut tokio::process::Command),
) -> (
    tokio::process::Child,
    Vec<String>,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let public = format!("http://{bind}");
    let mut env: Vec<(&str, String)> = vec![
        ("BIND_ADDR", bind.clone()),
        ("PUBLIC_BASE_URL", public),
        ("LOG_FORMAT", "pretty".into()),
        ("RUST_LOG", "info".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let mut cmd = crate::doctor::cli_command(app, &["serve"], &env);
    // Logs go to stderr; stdout is for data.
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    configure(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr).lines();
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = tokio::time::timeout_at(deadline, reader.next_line())
            .await
            .expect("server started in time")
            .unwrap()
            .expect("server kept running");
        let listening = line.contains("auth-server listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok(Some(l)) = reader.next_line().await {
            let _ = tx.send(l);
        }
    });
    (child, lines, bind, rx)
}

#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_trace_level() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let public = format!("http://{bind}");
    app.fake
        .register_redirect_uri(&format!("{public}/passport/gmail/callback"));
    let env = vec![
        ("BIND_ADDR", bind.clone()),
        ("PUBLIC_BASE_URL", public.clone()),
        ("RUST_LOG", "trace".to_string()),
        ("LOG_FORMAT", "json".to_string()),
    ];
    let mut cmd = crate::doctor::cli_command(&app, &["serve"], &env);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let client = app.client();
    crate::wait::wait_until(
        "the traced server to answer /readyz with 200",
        Duration::from_secs(20),
        async || {
            client
                .get(format!("{public}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        },
    )
    .await;

    // A full journey against that process: connect, consent, callback,
    // a refresh through the token API, a status call, a disconnect.
    let user = Uuid::new_v4();
    let jwt = session_for(user);
    let browser = Browser {
        app: public.clone(),
        ..app.browser(Some(user))
    };
    browser.jar.add_cookie_str(
        &format!("access_token={jwt}; Path=/"),
        &public.parse().unwrap(),
    );
    let authorize = browser.start(None).await;
    let sealed_verifier: String =
        sqlx::query_scalar("SELECT pkce_verifier FROM oauth_state WHERE done_at IS NULL LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let verifier = app
        .cipher
        .open(user, Field::PkceVerifier, &sealed_verifier)
        .unwrap();
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let landed = browser.callback(&cb).await;
    assert_eq!(landed.status(), StatusCode::FOUND);
    let state = query_map(&authorize)["state"].clone();
    app.expire(user).await;
    let token = client
        .post(format!("{public}/internal/passport/gmail/token"))
        .bearer_auth(INTERNAL_KEY)
        .json(&serde_json::json!({"user_id": user, "scopes": ["calendar.events"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    let _ = browser.get("/api/passport/gmail").await;
    let bad = client
        .post(format!("{public}/internal/passport/gmail/token"))
        .bearer_auth("wrong-key-but-long-enough")
        .json(&serde_json::json!({"user_id": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let gone = client
        .delete(format!("{public}/internal/passport/gmail/users/{user}"))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::OK);

    child.kill().await.unwrap();
    let logs = format!("{}\n{}", out_task.await.unwrap(), err_task.await.unwrap());
    assert!(
        logs.len() > 10_000,
        "trace logging was on ({} bytes)",
        logs.len()
    );
    assert!(
        logs.contains("consent completed"),
        "the flow ran through this process"
    );

    let mut secrets: Vec<(String, String)> = app
        .fake
        .issued_secrets()
        .into_iter()
        .map(|s| ("issued by Google".to_string(), s))
        .collect();
    secrets.extend([
        (
            "PKCE verifier".to_string(),
            verifier.expose_secret().to_string(),
        ),
        ("client secret".to_string(), CLIENT_SECRET.to_string()),
        ("session JWT secret".to_string(), JWT_SECRET.to_string()),
        ("session JWT".to_string(), jwt.clone()),
        ("internal API key".to_string(), INTERNAL_KEY.to_string()),
        (
            "presented wrong key".to_string(),
            "wrong-key-but-long-enough".to_string(),
        ),
        (
            "encryption key".to_string(),
            KEY_T1.split(':').nth(1).unwrap().to_string(),
        ),
        (
            "old encryption key".to_string(),
            KEY_T0.split(':').nth(1).unwrap().to_string(),
        ),
        ("state".to_string(), state),
        ("sealed verifier".to_string(), sealed_verifier),
    ]);
    assert!(secrets.len() >= 12);
    for (what, secret) in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{what} appears in the logs"
        );
    }
}

#[tokio::test]
async fn cookies_are_secure_on_an_https_base_url() {
    let app = TestApp::spawn_with(&[("PUBLIC_BASE_URL", "https://auth.ro-being.test")]).await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let resp = browser.connect(None).await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/passport/gmail/callback"), "{cookie}");
}

#[tokio::test]
async fn over_a_rate_limit_is_429_with_retry_after_and_changes_nothing() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_CONNECT_USER_PER_MIN", "3"),
        ("RATE_LIMIT_TOKEN_USER_PER_MIN", "2"),
        ("RATE_LIMIT_BROWSER_IP_PER_MIN", "8"),
    ])
    .await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));
    for _ in 0..3 {
        assert_eq!(browser.connect(None).await.status(), StatusCode::FOUND);
    }
    let states = app.state_count().await;
    let limited = browser.connect(None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(limited
        .text()
        .await
        .unwrap()
        .contains("요청이 너무 많습니다"));
    assert_eq!(app.state_count().await, states, "nothing stored");

    // Another user is not affected by the first one's limit.
    let other = app.browser(Some(Uuid::new_v4()));
    assert_eq!(other.connect(None).await.status(), StatusCode::FOUND);

    // Token API, per user.
    assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
    assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
    let (status, body, headers) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "rate_limited");
    assert!(headers.contains_key("retry-after"));

    // Per IP on the browser routes, for anonymous requests only: the five
    // signed-in connects above did not count.
    let anonymous = app.browser(None);
    for _ in 0..8 {
        let stray = anonymous.get("/passport/gmail/callback?state=x").await;
        assert_eq!(stray.status(), StatusCode::BAD_REQUEST);
    }
    let limited = anonymous.get("/passport/gmail/callback?state=x").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .client()
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn foreign_sites_cannot_start_a_consent_but_ro_being_can() {
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    let evil = browser
        .client
        .get(app.url("/passport/gmail/connect"))
        .header("sec-fetch-site", "cross-site")
        .header("referer", "https://evil.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.state_count().await, 0);
    let from_ro_being = browser
        .client
        .get(app.url("/passport/gmail/connect"))
        .header("sec-fetch-site", "cross-site")
        .header("referer", "https://ro-being.com/settings/items")
        .send()
        .await
        .unwrap();
    assert_eq!(from_ro_being.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let behind = TestApp::spawn_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_BROWSER_IP_PER_MIN", "2"),
    ])
    .await;
    let hit = |app: &TestApp, xff: &'static str| {
        app.client()
            .get(app.url("/passport/gmail/callback?state=x"))
            .header("x-forwarded-for", xff)
            .send()
    };
    for (xff, expected) in [
        ("203.0.113.1", StatusCode::BAD_REQUEST),
        ("203.0.113.1", StatusCode::BAD_REQUEST),
        ("203.0.113.1", StatusCode::TOO_MANY_REQUESTS),
        ("203.0.113.2", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(hit(&behind, xff).await.unwrap().status(), expected, "{xff}");
    }
    // A client cannot pick its own key by sending the header to a server
    // that does not trust its peer.
    let direct = TestApp::spawn_with(&[("RATE_LIMIT_BROWSER_IP_PER_MIN", "2")]).await;
    for (xff, expected) in [
        ("198.51.100.1", StatusCode::BAD_REQUEST),
        ("198.51.100.2", StatusCode::BAD_REQUEST),
        ("198.51.100.3", StatusCode::TOO_MANY_REQUESTS),
    ] {
        assert_eq!(hit(&direct, xff).await.unwrap().status(), expected, "{xff}");
    }
}

#[tokio::test]
async fn a_plaintext_refresh_token_of_the_old_service_is_sealed_at_its_next_refresh() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (access, refresh) = app.fake.seed_grant(JISOO, ALL).unwrap();
    let scopes = auth_server::scopes::ScopeSet::parse_known(ALL.iter().copied()).unwrap();
    sqlx::query(
        "INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes, expires_at) VALUES ($1, $2, $3, $4, now())",
    )
    .bind(user)
    .bind(&access)
    .bind(&refresh)
    .bind(scopes.to_json())
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
    let row = app.row(user).await.unwrap();
    assert!(row
        .refresh_token
        .as_deref()
        .unwrap()
        .starts_with("enc:v1:t1:"));
    assert!(row
        .access_token
        .as_deref()
        .unwrap()
        .starts_with("enc:v1:t1:"));
    assert_eq!(
        app.refresh_of(user).await.as_deref(),
        Some(refresh.as_str())
    );
}
