//! The doctor names the real cause: not connected, revoked, Testing-mode
//! expiry, no refresh token, wrong client, scope missing, Calendar API
//! disabled, Google down, or working.

use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use uuid::Uuid;

async fn diagnose(app: &TestApp, user: Uuid) -> serde_json::Value {
    let resp = app
        .client()
        .get(app.url(&format!("/internal/passport/gmail/users/{user}/diagnosis")))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn check<'a>(d: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {d}"))
}

#[tokio::test]
async fn not_connected() {
    let app = TestApp::spawn().await;
    let d = diagnose(&app, Uuid::new_v4()).await;
    assert_eq!(d["cause"]["code"], "no_connection");
    assert_eq!(d["connected"], false);
    assert!(d["cause"]["fix_ko"].as_str().unwrap().contains("연결하기"));
}

#[tokio::test]
async fn working_connection() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "works", "{d}");
    for name in [
        "connection",
        "stored_scopes",
        "status",
        "live_refresh",
        "tokeninfo",
        "calendar_api",
    ] {
        assert_eq!(check(&d, name)["outcome"], "ok", "{name}: {d}");
    }
}

#[tokio::test]
async fn scope_missing_is_not_called_a_revocation() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "scope_missing", "{d}");
    assert!(d["cause"]["en"].as_str().unwrap().contains("not revoked"));
    assert_eq!(check(&d, "live_refresh")["outcome"], "ok");
    assert!(check(&d, "calendar_api")["en"]
        .as_str()
        .unwrap()
        .contains("insufficientPermissions"));
    assert_eq!(
        d["missing_scopes"],
        serde_json::json!(["calendar", "calendar.events"])
    );
}

#[tokio::test]
async fn calendar_api_disabled_is_told_apart_from_scope_missing() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.fake.set_behaviour(Behaviour {
        calendar_api_disabled: true,
        ..Behaviour::default()
    });
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "calendar_api_disabled", "{d}");
    assert!(d["cause"]["fix_en"]
        .as_str()
        .unwrap()
        .contains("Enable the Google Calendar API"));
    assert!(check(&d, "calendar_api")["en"]
        .as_str()
        .unwrap()
        .contains("accessNotConfigured"));
}

#[tokio::test]
async fn a_grant_revoked_by_the_user() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.fake.revoke_account(JISOO);
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "grant_revoked_or_expired", "{d}");
    assert_eq!(check(&d, "live_refresh")["outcome"], "problem");
    assert_eq!(
        d["status"], "reauth_required",
        "the live refresh recorded it"
    );
    let en = d["cause"]["en"].as_str().unwrap();
    assert!(
        en.contains("password")
            && en.contains("100 refresh tokens")
            && en.contains("not a missing scope")
    );
    // Asked again, it answers from the recorded state.
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "grant_revoked_or_expired");
    assert_eq!(check(&d, "live_refresh")["outcome"], "skipped");
}

#[tokio::test]
async fn testing_mode_seven_day_expiry() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    sqlx::query("UPDATE gmail_token SET consented_at = now() - interval '7 days 2 hours' WHERE user_id = $1")
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();
    app.fake.revoke_account(JISOO);
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "testing_mode_expiry", "{d}");
    assert!(d["cause"]["fix_en"]
        .as_str()
        .unwrap()
        .contains("Publish the OAuth consent screen"));
}

#[tokio::test]
async fn no_refresh_token_stored() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    sqlx::query("UPDATE gmail_token SET refresh_token = NULL WHERE user_id = $1")
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "no_refresh_token", "{d}");
}

#[tokio::test]
async fn our_client_refused_by_google() {
    let app = TestApp::spawn_with(&[("GOOGLE_CLIENT_SECRET", "not-the-registered-secret")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "wrong_client", "{d}");
    assert!(d["cause"]["fix_en"]
        .as_str()
        .unwrap()
        .contains("GOOGLE_CLIENT_SECRET"));
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::Active,
        "not the user's fault: row unchanged"
    );
}

#[tokio::test]
async fn google_unavailable() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.fake.set_behaviour(Behaviour {
        token_unavailable: true,
        ..Behaviour::default()
    });
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "google_unavailable", "{d}");
}

#[tokio::test]
async fn the_doctor_command_prints_the_cause() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let out = run_cli(&app, &["doctor", "--user", &user.to_string()]).await;
    assert!(out.contains("scope_missing"), "{out}");
    assert!(out.contains("원인 / cause"), "{out}");
    assert!(out.contains("재인증"), "{out}");
    let json = run_cli(&app, &["doctor", "--user", &user.to_string(), "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["cause"]["code"], "scope_missing");
}

#[tokio::test]
async fn data_goes_to_stdout_and_logs_to_stderr_even_at_debug() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let debug = [("RUST_LOG", "debug")];
    let out = run_cli_env(
        &app,
        &["doctor", "--user", &user.to_string(), "--json"],
        &debug,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // `auth-server doctor --json | jq` works: stdout is the JSON, whole.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v["cause"]["code"], "scope_missing");
    // The logs were written, to stderr.
    assert!(stderr.contains("DEBUG"), "debug logs on stderr: {stderr}");
    let csv = run_cli_env(&app, &["report", "--format", "csv"], &debug).await;
    assert!(csv.status.success());
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(!csv.contains("DEBUG") && !csv.contains("INFO"), "{csv}");
    assert!(csv.lines().all(|l| l.contains(',')), "only CSV rows: {csv}");
}

/// Run the `auth-server` binary with the test app's settings.
pub async fn run_cli(app: &TestApp, args: &[&str]) -> String {
    let out = run_cli_env(app, args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run the binary with extra or overriding environment; returns its output.
pub async fn run_cli_env(
    app: &TestApp,
    args: &[&str],
    extra: &[(&str, &str)],
) -> std::process::Output {
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
    cli_command(app, args, &extra)
        .output()
        .await
        .expect("run auth-server")
}

/// The `auth-server` binary with the test app's settings as its environment.
pub fn cli_command(
    app: &TestApp,
    args: &[&str],
    extra: &[(&str, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let s = &app.settings;
    let g = &s.google;
    for (k, v) in [
        ("DATABASE_URL", app.database_url.clone()),
        ("PUBLIC_BASE_URL", s.public_base_url.to_string()),
        ("GOOGLE_CLIENT_ID", CLIENT_ID.to_string()),
        ("GOOGLE_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("GOOGLE_AUTH_URL", g.auth_url.to_string()),
        ("GOOGLE_TOKEN_URL", g.token_url.to_string()),
        ("GOOGLE_USERINFO_URL", g.userinfo_url.to_string()),
        ("GOOGLE_REVOKE_URL", g.revoke_url.to_string()),
        ("GOOGLE_TOKENINFO_URL", g.tokeninfo_url.to_string()),
        ("GOOGLE_API_BASE_URL", g.api_base_url.to_string()),
        ("ALLOWED_RETURN_ORIGINS", ROBEING.to_string()),
        ("INVENTORY_URL", format!("{ROBEING}/settings/items")),
        ("SESSION_JWT_SECRET", JWT_SECRET.to_string()),
        ("INTERNAL_API_KEYS", INTERNAL_KEY.to_string()),
        ("RUST_LOG", "warn".to_string()),
        ("TOKEN_ENCRYPTION_KEYS", format!("{KEY_T1},{KEY_T0}")),
    ] {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    // No .env of the developer's may leak into the test.
    cmd.current_dir(std::env::temp_dir());
    cmd
}
