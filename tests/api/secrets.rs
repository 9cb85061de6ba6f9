//! Secrets that are real: `auth-server init` prints a block the service
//! starts with; `.env.example`'s placeholders and weak values stop the start,
//! each setting named, no value echoed.

use std::collections::BTreeMap;
use std::process::Output;

use crate::doctor::run_cli_env;
use crate::helpers::*;
use crate::security::spawn_server_with;
use reqwest::StatusCode;
use uuid::Uuid;

/// The real binary, with nothing of the environment but `PATH`, outside any
/// directory with a `.env`.
async fn run_bare(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("run auth-server")
}

/// The `KEY=value` lines of a `.env`-style text; with `commented`, also the
/// commented-out ones (`#KEY=value`).
fn settings(text: &str, commented: bool) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| match l.strip_prefix('#') {
            Some(rest) if commented => Some(rest),
            Some(_) => None,
            None => Some(l),
        })
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn init_prints_fresh_secrets_that_the_service_starts_with() {
    let app = TestApp::spawn().await;
    let skills = ["skill-calendar", "skill-gmail", "skill-notes"];
    let out = run_bare(&["init", "--skills", &skills.join(",")]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block = String::from_utf8(out.stdout).unwrap();
    let set = settings(&block, false);
    assert_eq!(
        set.keys().collect::<Vec<_>>(),
        [
            "INTERNAL_API_KEYS",
            "TOKEN_ENCRYPTION_KEYS",
            "WEBHOOK_SECRET"
        ],
        "{block}"
    );
    // One key per skill, each skill named in the comment, in order.
    let keys: Vec<&str> = set["INTERNAL_API_KEYS"].split(',').collect();
    assert_eq!(keys.len(), 3);
    for (i, skill) in skills.iter().enumerate() {
        assert!(
            block.contains(&format!("#   {}. {skill}\n", i + 1)),
            "{block}"
        );
    }
    let today = chrono::Utc::now().format("k%Y%m%d").to_string();
    assert!(set["TOKEN_ENCRYPTION_KEYS"].starts_with(&format!("{today}:")));
    // The session secret is ro-being's: a reminder, never a value.
    assert!(block.contains("\n#SESSION_JWT_SECRET=\n") && block.contains("ro-being"));
    // Fresh every time.
    let again = run_bare(&["init"]).await;
    let again = settings(&String::from_utf8(again.stdout).unwrap(), false);
    assert_eq!(again["INTERNAL_API_KEYS"].split(',').count(), 2);
    for k in ["TOKEN_ENCRYPTION_KEYS", "WEBHOOK_SECRET"] {
        assert_ne!(again[k], set[k], "{k} repeated");
    }

    // The settings check passes them.
    let mut extra: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_cli_env(&app, &["check-settings"], &extra).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with(
            "settings ok: 3 internal API key(s), 1 token encryption key(s), webhooks off"
        ),
        "{said}"
    );

    // The service starts with them, and they are its keys.
    extra.push(("WEBHOOK_URL", "http://127.0.0.1:9/hooks/passport"));
    let (mut child, _, bind) = spawn_server_with(&app, &extra, |_| {}).await;
    let client = app.client();
    let token = async |key: &str| {
        client
            .post(format!("http://{bind}/internal/passport/gmail/token"))
            .bearer_auth(key)
            .json(&serde_json::json!({"user_id": Uuid::new_v4(), "scopes": []}))
            .send()
            .await
            .unwrap()
            .status()
    };
    for key in &keys {
        assert_eq!(token(key).await, StatusCode::NOT_FOUND, "not_connected");
    }
    assert_eq!(token(INTERNAL_KEY).await, StatusCode::UNAUTHORIZED);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn init_refuses_bad_names() {
    for args in [
        &["init", "--skills", "skill calendar"][..],
        &["init", "--skills", ""],
        &["init", "--key-id", "k:1"],
    ] {
        let out = run_bare(args).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed");
    }
}

#[tokio::test]
async fn env_example_secrets_stop_the_start_named_and_never_echoed() {
    let app = TestApp::spawn().await;
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"))
        .expect(".env.example is readable");
    // As an operator would copy it, with the webhook lines uncommented.
    let mut copied = settings(&example, false);
    let commented = settings(&example, true);
    for k in ["WEBHOOK_URL", "WEBHOOK_SECRET"] {
        copied.insert(k.into(), commented[k].clone());
    }
    copied.remove("DATABASE_URL");
    let extra: Vec<(&str, &str)> = copied
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for command in ["serve", "check-settings", "rotate-keys"] {
        let out = run_cli_env(&app, &[command], &extra).await;
        assert!(!out.status.success() && out.stdout.is_empty(), "{command}");
        let text = String::from_utf8_lossy(&out.stderr);
        for named in [
            "GOOGLE_CLIENT_ID is a placeholder",
            "GOOGLE_CLIENT_SECRET is a placeholder",
            "SESSION_JWT_SECRET is a placeholder",
            "INTERNAL_API_KEYS: key 1 of 2 is a placeholder",
            "INTERNAL_API_KEYS: key 2 of 2 is a placeholder",
            "TOKEN_ENCRYPTION_KEYS: key `k1` is a placeholder",
            "WEBHOOK_SECRET is a placeholder",
        ] {
            assert!(text.contains(named), "`{named}` missing in:\n{text}");
        }
        for key in [
            "GOOGLE_CLIENT_ID",
            "GOOGLE_CLIENT_SECRET",
            "SESSION_JWT_SECRET",
            "INTERNAL_API_KEYS",
            "TOKEN_ENCRYPTION_KEYS",
            "WEBHOOK_SECRET",
        ] {
            for value in copied[key].split(',') {
                let secret = value.split_once(':').map_or(value, |(_, v)| v);
                assert!(!text.contains(secret), "{key}'s value echoed:\n{text}");
            }
        }
    }

    // Weak values made by hand: the rule, not the value.
    let weak = [
        (
            "INTERNAL_API_KEYS",
            "test-internal-key-0123456789",
            "fewer than 128 bits",
        ),
        (
            "SESSION_JWT_SECRET",
            "ssssssssssssssssssssssssssssssssssss",
            "single character",
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "single character (or byte)",
        ),
    ];
    let extra: Vec<(&str, &str)> = weak.iter().map(|(k, v, _)| (*k, *v)).collect();
    let out = run_cli_env(&app, &["serve"], &extra).await;
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("the settings have 3 problem(s)"), "{text}");
    for (key, value, rule) in weak {
        let line = text.lines().find(|l| l.contains(key)).unwrap_or_default();
        assert!(line.contains(rule), "{key}: `{rule}` missing in:\n{text}");
        let secret = value.split_once(':').map_or(value, |(_, v)| v);
        assert!(!text.contains(secret), "{key}'s value echoed:\n{text}");
    }
}
