//! Google's revocation signals (RISC): the fake Google signs Security Event
//! Tokens with its issuer key and pushes them to `POST /google/risc` over
//! real HTTP; the receiver verifies them against the fake's configuration
//! document and JWKS, and applies them.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::doctor::cli_command;
use crate::helpers::*;
use crate::refusals::{diagnose, status_api};
use crate::wait::wait_until;
use auth_server::fake_google::Behaviour;

const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789-abcdefgh";

/// An app whose webhooks go to a closed port (they stay pending, to be read
/// from the outbox).
async fn spawn(extra: &[(&str, &str)]) -> TestApp {
    let mut all = vec![
        ("WEBHOOK_URL", "http://127.0.0.1:9/hooks"),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    all.extend_from_slice(extra);
    TestApp::spawn_with(&all).await
}

/// Ask the fake Google to sign `event` and push it to the app's receiver;
/// the receiver's status and body.
async fn push(app: &TestApp, event: Value) -> (StatusCode, Value) {
    let out = push_answer(app, event).await;
    let status = StatusCode::from_u16(out["status"].as_u64().unwrap() as u16).unwrap();
    (status, out["body"].clone())
}

/// The fake's account of its push: the receiver's `status`, `body` and
/// `retry_after`.
async fn push_answer(app: &TestApp, mut event: Value) -> Value {
    event["receiver"] = json!(app.url("/google/risc"));
    let resp = app
        .client()
        .post(format!("{}/__fake/risc/push", app.fake_addr))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the fake pushed");
    resp.json().await.unwrap()
}

async fn risc_rows(app: &TestApp) -> Vec<(String, String, i32, Option<String>)> {
    sqlx::query_as(
        "SELECT event_type, subject_kind, connections_marked, detail FROM risc_event ORDER BY received_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Wait until a key refetch is due again under
/// `GOOGLE_RISC_KEY_REFETCH_SECS=1`: the keys were last fetched no later
/// than `fetched_by`, and the receiver measures on the same monotonic clock.
async fn wait_refetch_due(fetched_by: Instant) {
    wait_until(
        "the key refetch interval to pass",
        Duration::from_secs(5),
        async || fetched_by.elapsed() > Duration::from_secs(1),
    )
    .await;
}

/// The cause and cause code in the pending `passport.reauth_required`
/// webhook of `user`.
async fn webhook_cause(app: &TestApp, user: Uuid) -> Option<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT payload->'data'->>'cause', payload->'data'->>'cause_code' FROM webhook_outbox WHERE user_id = $1 AND kind = 'reauth_required'",
    )
    .bind(user)
    .fetch_optional(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_account_event_marks_every_connection_of_the_account_and_the_token_api_answers_at_once(
) {
    let app = spawn(&[]).await;
    let cases = [
        ("tokens-revoked", None, "tokens_revoked"),
        ("sessions-revoked", None, "sessions_revoked"),
        ("account-disabled", Some("hijacking"), "account_disabled"),
        (
            "account-credential-change-required",
            None,
            "credential_change_required",
        ),
    ];
    for (event, reason, code) in cases {
        // Two ro-being users connected the same Google account, a third another.
        let (a, b, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        app.seed_passport(a, JISOO, ALL).await;
        app.seed_passport(b, JISOO, ALL).await;
        app.seed_passport(other, MINHO, ALL).await;
        // A token served once: the cache holds it.
        assert_eq!(app.token(a, &["calendar"]).await.0, StatusCode::OK);
        let refreshes = app.fake.calls("token");

        let (status, _) = push(
            &app,
            json!({"event": event, "email": JISOO, "reason": reason}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}");

        for user in [a, b] {
            let row = app.row(user).await.unwrap();
            assert_eq!(row.status, ConnectionStatus::ReauthRequired, "{event}");
            let stored = row.last_error.unwrap();
            assert!(stored.starts_with(&format!("{code}: ")), "{stored}");
            if let Some(r) = reason {
                assert!(stored.contains(r), "the reason is kept: {stored}");
            }
            let (status, body, _) = app.token(user, &["calendar"]).await;
            assert_eq!(status, StatusCode::CONFLICT, "{event}: {body}");
            assert_eq!(body["error"], "reauth_required");
            assert!(body["message"].as_str().unwrap().contains(code), "{body}");
            let events = app.events(user).await;
            let marked = events
                .iter()
                .find(|e| e.kind == EventKind::ReauthRequired)
                .expect("an audit event");
            assert_eq!(marked.error_code.as_deref(), Some(code));
            let (cause, cause_code) = webhook_cause(&app, user).await.expect("a webhook");
            assert!(cause.starts_with(code), "{cause}");
            assert_eq!(cause_code.as_deref(), Some(code), "{event}");
        }
        assert_eq!(
            app.fake.calls("token"),
            refreshes,
            "{event}: answered without calling Google"
        );
        let untouched = app.row(other).await.unwrap();
        assert_eq!(untouched.status, ConnectionStatus::Active, "{event}");
        assert_eq!(app.token(other, &["calendar"]).await.0, StatusCode::OK);
    }
    let rows = risc_rows(&app).await;
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r.1 == "iss-sub" && r.2 == 2),
        "{rows:?}"
    );
    let metrics = app.metrics().await;
    // The recorder is the process's: other tests count too.
    let applied = r#"passport_risc_events_total{event="tokens-revoked",outcome="applied"}"#;
    assert!(metrics.contains(applied), "{metrics}");
}

#[tokio::test]
async fn a_signal_that_reauth_alone_does_not_fix_says_what_the_user_does_first_everywhere() {
    let app = spawn(&[]).await;
    let cases = [
        (
            JISOO,
            "account-disabled",
            "account_disabled",
            "계정을 복구해야",
            "restore it with Google",
            "Restore it with Google first",
        ),
        (
            MINHO,
            "account-credential-change-required",
            "credential_change_required",
            "비밀번호를 바꾼 뒤",
            "change it first",
            "Change it first",
        ),
    ];
    for (email, event, code, ko, api, page_en) in cases {
        let user = Uuid::new_v4();
        app.seed_passport(user, email, ALL).await;
        let (status, _) = push(&app, json!({"event": event, "email": email})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}");

        let (_, cause_code) = webhook_cause(&app, user).await.expect("a webhook");
        assert_eq!(cause_code.as_deref(), Some(code));
        let (status, body, _) = app.token(user, &["calendar"]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["cause"], code, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(api), "{message}");
        let st = status_api(&app, user).await;
        assert_eq!(st["cause"], code, "{st}");
        let page = app
            .browser(Some(user))
            .get("/passport/gmail")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(&format!("data-cause=\"{code}\"")), "{page}");
        assert!(page.contains(ko) && page.contains(page_en), "{page}");
        let d = diagnose(&app, user).await;
        assert_eq!(d["cause"]["code"], code, "{d}");
        assert!(d["cause"]["fix_ko"].as_str().unwrap().contains(ko), "{d}");
        let en = d["cause"]["en"].as_str().unwrap();
        assert!(en.contains("security event"), "{d}");
        // Tell those apart from the generic fix: 재인증 alone does not help.
        let fix_en = d["cause"]["fix_en"].as_str().unwrap();
        assert!(fix_en.contains("first"), "{d}");
    }
}

#[tokio::test]
async fn a_late_account_event_spares_a_grant_made_after_google_issued_it() {
    let app = spawn(&[]).await;
    // Fresh consent; one of unknown time (adopted row); one from two hours ago.
    let (fresh, unknown, older) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for user in [fresh, unknown, older] {
        app.seed_passport(user, JISOO, ALL).await;
    }
    sqlx::query("UPDATE gmail_token SET consented_at = NULL WHERE user_id = $1")
        .bind(unknown)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE gmail_token SET consented_at = now() - interval '2 hours' WHERE user_id = $1",
    )
    .bind(older)
    .execute(&app.db)
    .await
    .unwrap();

    // Issued an hour ago, delivered only now.
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600;
    for event in ["tokens-revoked", "account-disabled"] {
        let late = json!({"event": event, "email": JISOO, "iat": an_hour_ago});
        let (status, body) = push(&app, late).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let fresh_row = app.row(fresh).await.unwrap();
    assert_eq!(
        fresh_row.status,
        ConnectionStatus::Active,
        "consented after the event"
    );
    assert_eq!(app.token(fresh, &["calendar"]).await.0, StatusCode::OK);
    for user in [unknown, older] {
        let row = app.row(user).await.unwrap();
        assert_eq!(row.status, ConnectionStatus::ReauthRequired);
    }
    let marked: Vec<i32> = risc_rows(&app).await.iter().map(|r| r.2).collect();
    assert_eq!(marked, [2, 0], "the second found the two already marked");

    // The same event issued now marks the fresh grant too.
    let (status, _) = push(&app, json!({"event": "tokens-revoked", "email": JISOO})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let fresh_row = app.row(fresh).await.unwrap();
    assert_eq!(fresh_row.status, ConnectionStatus::ReauthRequired);
}

#[tokio::test]
async fn account_enabled_and_verification_are_recorded_and_change_nothing() {
    let app = spawn(&[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.snapshot().await;

    let (status, _) = push(&app, json!({"event": "account-enabled", "email": JISOO})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = push(&app, json!({"event": "verification", "state": "hello-42"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    assert_eq!(app.snapshot().await, before, "no connection changed");
    let rows = risc_rows(&app).await;
    assert_eq!(
        rows,
        vec![
            ("account-enabled".into(), "iss-sub".into(), 0, None),
            (
                "verification".into(),
                "none".into(),
                0,
                Some("hello-42".into())
            ),
        ]
    );
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_refused_with_rfc_8935_errors_and_nothing_changes() {
    let app = spawn(&[("GOOGLE_RISC_KEY_REFETCH_SECS", "1")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.snapshot().await;
    let revoke = |extra: Value| {
        let mut e = json!({"event": "tokens-revoked", "email": JISOO});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };

    let (status, body) = push(&app, revoke(json!({"signing": "forged"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["err"], "authentication_failed", "{body}");

    let (status, body) = push(&app, revoke(json!({"aud": "someone-else"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["err"], "invalid_audience", "{body}");
    let fetched_by = Instant::now();

    // An unknown key, once a refetch is due: the receiver fetches the keys
    // again, still does not find it, and refuses.
    wait_refetch_due(fetched_by).await;
    let fetched = app.fake.calls("risc.jwks");
    let (status, body) = push(&app, revoke(json!({"signing": "unknown_key"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["err"], "invalid_key", "{body}");
    assert_eq!(app.fake.calls("risc.jwks"), fetched + 1, "refetched once");

    // Not a SET at all, and the wrong media type.
    let resp = app
        .client()
        .post(app.url("/google/risc"))
        .header("content-type", "application/secevent+jwt")
        .body("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["err"], "invalid_request");
    assert!(body.get("error").is_none(), "RFC 8935's shape: {body}");
    let resp = app
        .client()
        .post(app.url("/google/risc"))
        .json(&json!({"events": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert!(risc_rows(&app).await.is_empty());
    let get = app
        .client()
        .get(app.url("/google/risc"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_rotated_issuer_key_is_fetched_on_its_first_use() {
    let app = spawn(&[("GOOGLE_RISC_KEY_REFETCH_SECS", "1")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let (status, _) = push(&app, json!({"event": "account-enabled", "email": JISOO})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let fetched_by = Instant::now();
    let fetched = app.fake.calls("risc.jwks");

    app.fake.rotate_risc_key();
    wait_refetch_due(fetched_by).await;
    let (status, body) = push(&app, json!({"event": "tokens-revoked", "email": JISOO})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.fake.calls("risc.jwks"), fetched + 1);
    let row = app.row(user).await.unwrap();
    assert_eq!(row.status, ConnectionStatus::ReauthRequired);
}

#[tokio::test]
async fn unknown_keys_refetch_at_most_once_per_interval() {
    let app = spawn(&[("GOOGLE_RISC_KEY_REFETCH_SECS", "3600")]).await;
    let bogus = json!({"event": "tokens-revoked", "email": JISOO, "signing": "unknown_key"});
    // Fetched for this token, and still unknown: refused for good.
    let (status, body) = push(&app, bogus.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["err"], "invalid_key");
    // Before the next fetch is due: "not yet" (Google delivers again; a key
    // it has just rotated in would then be fetched), never a lasting 400.
    for _ in 0..2 {
        let out = push_answer(&app, bogus.clone()).await;
        assert_eq!(out["status"], 503, "{out}");
        let wait: u64 = out["retry_after"].as_str().unwrap().parse().unwrap();
        assert!((3000..=3600).contains(&wait), "the time left: {wait}");
    }
    assert_eq!(
        app.fake.calls("risc.jwks"),
        1,
        "fetched once, not per token"
    );
    // A token signed with a key already known is not held up meanwhile.
    let (status, body) = push(&app, json!({"event": "verification", "state": "s"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_failed_key_fetch_answers_503_and_does_not_hold_back_the_next_delivery() {
    // The default interval (10 s): a failed fetch must not start it.
    let app = spawn(&[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let revoke = json!({"event": "tokens-revoked", "email": JISOO});
    app.fake.set_behaviour(Behaviour {
        risc_jwks_unavailable: true,
        ..Behaviour::default()
    });
    let (status, body) = push(&app, revoke.clone()).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "Google delivers again: {body}"
    );
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::Active
    );
    assert!(risc_rows(&app).await.is_empty());

    // Google's redelivery, right after the outage: the keys are fetched
    // at once and the revocation applied.
    app.fake.set_behaviour(Behaviour::default());
    let fetched = app.fake.calls("risc.jwks");
    let (status, body) = push(&app, revoke).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.fake.calls("risc.jwks"), fetched + 1);
    let row = app.row(user).await.unwrap();
    assert_eq!(row.status, ConnectionStatus::ReauthRequired);
}

#[tokio::test]
async fn a_replayed_jti_answers_202_and_changes_nothing() {
    let app = spawn(&[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let event = json!({"event": "tokens-revoked", "email": JISOO, "jti": "jti-replayed-1"});
    let (status, _) = push(&app, event.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::ReauthRequired
    );
    // The user connects again; Google delivers the same event once more.
    app.seed_passport(user, JISOO, ALL).await;
    let before = app.snapshot().await;
    let (status, _) = push(&app, event).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::Active
    );
    assert_eq!(risc_rows(&app).await.len(), 1);
}

#[tokio::test]
async fn token_revoked_by_prefix_or_by_hash_marks_only_the_connection_holding_that_token() {
    let app = spawn(&[]).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    app.browser(Some(a)).reauth(None, JISOO, ALL, true).await;
    app.browser(Some(b)).reauth(None, JISOO, ALL, true).await;
    let refresh_a = app.refresh_of(a).await.unwrap();
    let refresh_b = app.refresh_of(b).await.unwrap();
    assert_ne!(refresh_a, refresh_b);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT refresh_prefix_mac FROM gmail_token WHERE user_id = $1")
            .bind(a)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let stored = stored.expect("the consent stored the prefix's MAC");
    assert!(
        !stored.contains(&refresh_a[..16]),
        "never the prefix in clear"
    );

    let (status, _) = push(
        &app,
        json!({"event": "token-revoked", "refresh_token": refresh_a, "token_identifier_alg": "prefix"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let row = app.row(a).await.unwrap();
    assert_eq!(row.status, ConnectionStatus::ReauthRequired);
    assert!(row.last_error.unwrap().starts_with("token_revoked: "));
    assert_eq!(app.row(b).await.unwrap().status, ConnectionStatus::Active);
    let (status, body, _) = app.token(a, &["calendar"]).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("reauth_required"))
    );

    let (status, _) = push(
        &app,
        json!({"event": "token-revoked", "refresh_token": refresh_b, "token_identifier_alg": "hash_base64_sha512_sha512"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.row(b).await.unwrap().status,
        ConnectionStatus::ReauthRequired
    );
    let rows = risc_rows(&app).await;
    assert!(
        rows.iter().all(|r| r.0 == "token-revoked" && r.2 == 1),
        "{rows:?}"
    );
}

#[tokio::test]
async fn risc_backfill_identifies_rows_stored_before_and_token_revoked_then_finds_them() {
    let app = spawn(&[]).await;
    // Written straight to the table, as rows stored before RISC are.
    let user = Uuid::new_v4();
    let (_, refresh) = app.seed_passport(user, MINHO, ALL).await;
    let event = json!({"event": "token-revoked", "refresh_token": refresh,
        "token_identifier_alg": "hash_base64_sha512_sha512"});
    let (status, _) = push(&app, event.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::Active,
        "not identified yet"
    );

    let out = cli_command(&app, &["risc", "backfill", "--batch", "1"], &[])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("1 refresh tokens identified"),
        "{stdout}"
    );

    let (status, _) = push(&app, event).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::ReauthRequired
    );
}

#[tokio::test]
async fn risc_register_configures_the_stream_and_google_sends_a_verification_event() {
    let app = spawn(&[]).await;
    let dir = std::env::temp_dir().join(format!("risc-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("service-account.json");
    std::fs::write(&file, app.fake.risc_service_account().to_string()).unwrap();
    let env = [
        ("GOOGLE_RISC_API_URL", app.fake_addr.clone()),
        (
            "GOOGLE_RISC_CONFIG_URL",
            format!("{}/.well-known/risc-configuration", app.fake_addr),
        ),
    ];

    let args = [
        "risc",
        "register",
        "--service-account",
        file.to_str().unwrap(),
    ];
    let out = cli_command(&app, &args, &env).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receiver = app.url("/google/risc");
    assert!(stdout.contains(&receiver), "{stdout}");

    let (registered, events) = app.fake.risc_stream();
    assert_eq!(registered.as_deref(), Some(receiver.as_str()));
    assert_eq!(events.len(), 7, "{events:?}");
    assert!(events.contains(
        &"https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked".to_string()
    ));
    wait_until(
        "the verification event",
        Duration::from_secs(10),
        async || {
            risc_rows(&app).await.iter().any(|r| {
                r.0 == "verification"
                    && r.3
                        .as_deref()
                        .is_some_and(|s| s.starts_with("auth-server risc register"))
            })
        },
    )
    .await;

    // A missing file, and a key Google does not know, are said plainly.
    let missing = dir.join("nope.json");
    let args = [
        "risc",
        "register",
        "--service-account",
        missing.to_str().unwrap(),
    ];
    let out = cli_command(&app, &args, &env).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--service-account"), "{stderr}");

    let mut other = app.fake.risc_service_account();
    other["client_email"] = json!("someone@elsewhere.iam.gserviceaccount.com");
    std::fs::write(&file, other.to_string()).unwrap();
    let args = [
        "risc",
        "register",
        "--service-account",
        file.to_str().unwrap(),
    ];
    let out = cli_command(&app, &args, &env).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Google refused stream:update"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_signal_received_by_one_instance_drops_the_cached_token_of_every_instance() {
    let app = spawn(&[]).await;
    let other = app.sibling(&[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    // The other instance serves the token once: its cache holds it.
    assert_eq!(other.token(user, &["calendar"]).await.0, StatusCode::OK);
    let refreshes = app.fake.calls("token");

    let (status, _) = push(&app, json!({"event": "sessions-revoked", "email": JISOO})).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    wait_until(
        "the other instance to answer reauth_required",
        Duration::from_secs(10),
        async || other.token(user, &["calendar"]).await.0 == StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.fake.calls("token"), refreshes, "no call to Google");
}
