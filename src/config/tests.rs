use super::*;
use secrecy::ExposeSecret;

fn good() -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/x".into()),
        ("PUBLIC_BASE_URL", "https://auth.ro-being.com".into()),
        ("GOOGLE_CLIENT_ID", "cid".into()),
        ("GOOGLE_CLIENT_SECRET", "csecret".into()),
        ("SESSION_JWT_SECRET", "s".repeat(40)),
        ("INTERNAL_API_KEYS", "k".repeat(20)),
        ("ALLOWED_RETURN_ORIGINS", "https://ro-being.com".into()),
        (
            "INVENTORY_URL",
            "https://ro-being.com/settings/items".into(),
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        ),
    ]
}

#[test]
fn good_settings_validate_with_defaults() {
    let s = Settings::from_pairs(good()).unwrap();
    assert_eq!(s.bind_addr.to_string(), "0.0.0.0:51123");
    assert_eq!(s.gmail_scopes.len(), 7);
    assert_eq!(
        s.redirect_uri("gmail").as_str(),
        "https://auth.ro-being.com/passport/gmail/callback"
    );
    assert_eq!(s.allowed_return_origins.len(), 2);
    assert!(s.secure_cookies());
    let dbg = format!("{s:?}");
    assert!(
        !dbg.contains("csecret")
            && !dbg.contains(&"s".repeat(40))
            && !dbg.contains(&"k".repeat(20))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Settings::from_pairs([
        ("PUBLIC_BASE_URL", "not a url".to_string()),
        ("BIND_ADDR", "nowhere".to_string()),
        ("GMAIL_PASSPORT_SCOPES", "calendar,bogus.scope".to_string()),
        ("LOG_FORMAT", "xml".to_string()),
    ])
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "DATABASE_URL is not set",
        "BIND_ADDR",
        "PUBLIC_BASE_URL is not a valid URL",
        "GOOGLE_CLIENT_ID is not set",
        "GOOGLE_CLIENT_SECRET is not set",
        "GMAIL_PASSPORT_SCOPES: unknown scope `bogus.scope`",
        "SESSION_JWT_SECRET is not set",
        "INTERNAL_API_KEYS is not set",
        "LOG_FORMAT",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert!(err.problems.len() >= 9);
}

#[test]
fn scopes_override_accepts_short_names_and_urls() {
    let mut p = good();
    p.push((
        "GMAIL_PASSPORT_SCOPES",
        "gmail.send https://www.googleapis.com/auth/calendar.events".into(),
    ));
    let s = Settings::from_pairs(p).unwrap();
    assert_eq!(
        s.gmail_scopes.short_names(),
        vec!["gmail.send", "calendar.events"]
    );
}

#[test]
fn inventory_url_must_be_an_allowed_origin() {
    let mut p = good();
    p.retain(|(k, _)| *k != "INVENTORY_URL");
    p.push(("INVENTORY_URL", "https://evil.example/x".into()));
    let err = Settings::from_pairs(p).unwrap_err();
    assert!(err.to_string().contains("INVENTORY_URL"));
}

#[test]
fn encryption_keys_are_required_unless_plaintext_is_allowed() {
    let mut p = good();
    p.retain(|(k, _)| *k != "TOKEN_ENCRYPTION_KEYS");
    let err = Settings::from_pairs(p.clone()).unwrap_err();
    assert!(
        err.to_string().contains("TOKEN_ENCRYPTION_KEYS is not set"),
        "{err}"
    );
    p.push(("ALLOW_PLAINTEXT_TOKENS", "true".into()));
    assert!(
        Settings::from_pairs(p.clone())
            .unwrap()
            .allow_plaintext_tokens
    );
    p.push(("TOKEN_ENCRYPTION_KEYS", "k1:AAAA".into()));
    assert!(Settings::from_pairs(p)
        .unwrap_err()
        .to_string()
        .contains("32 bytes"));
}

#[test]
fn environment_values_stay_verbatim_strings() {
    let mut env: Vec<(String, String)> = good()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.retain(|(k, _)| k != "INTERNAL_API_KEYS");
    env.push(("INTERNAL_API_KEYS".into(), "0123456789012345678901".into()));
    env.push(("ALLOW_PLAINTEXT_TOKENS".into(), "true".into()));
    env.push(("GOOGLE_BREAKER_OPEN_SECS".into(), "30".into()));
    env.push(("UNRELATED_VARIABLE".into(), "ignored".into()));
    let s = Settings::from_layers(BTreeMap::new(), env).unwrap();
    assert!(s.allow_plaintext_tokens);
    assert_eq!(s.google_calls.breaker_open, Duration::from_secs(30));
    assert_eq!(
        s.internal_api_keys[0].expose_secret(),
        "0123456789012345678901"
    );
}

#[test]
fn numbers_out_of_range_are_reported_with_their_unit() {
    let mut p = good();
    p.push(("GOOGLE_HTTP_TIMEOUT_SECS", "0".into()));
    p.push(("RATE_LIMIT_TOKEN_USER_PER_MIN", "-1".into()));
    p.push(("WEBHOOK_URL", "https://ro-being.com/hooks".into()));
    p.push(("WEBHOOK_SECRET", "w".repeat(40)));
    p.push(("WEBHOOK_RETRY_BASE_MS", "5".into()));
    p.push(("SWEEP_PER_MINUTE", "lots".into()));
    let text = Settings::from_pairs(p).unwrap_err().to_string();
    for needle in [
        "GOOGLE_HTTP_TIMEOUT_SECS must be a whole number of seconds from 1 to 120",
        "RATE_LIMIT_TOKEN_USER_PER_MIN must be a whole number of requests per minute",
        "WEBHOOK_RETRY_BASE_MS must be a whole number of milliseconds from 10 to 3600000",
        "SWEEP_PER_MINUTE must be a whole number of refreshes per minute",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn google_endpoints_must_be_https_except_on_this_machine() {
    let mut p = good();
    p.push(("GOOGLE_TOKEN_URL", "http://oauth2.example.com/token".into()));
    let err = Settings::from_pairs(p.clone()).unwrap_err();
    assert!(
        err.to_string().contains("GOOGLE_TOKEN_URL must use https"),
        "{err}"
    );
    p.retain(|(k, _)| *k != "GOOGLE_TOKEN_URL");
    p.push(("GOOGLE_TOKEN_URL", "http://127.0.0.1:51124/token".into()));
    assert!(Settings::from_pairs(p).is_ok());
}

#[test]
fn debug_output_redacts_the_keys() {
    let s = Settings::from_pairs(good()).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("AAECAwQF"), "{dbg}");
    assert_eq!(s.token_keys[0].id, "k1");
}

#[test]
fn short_secrets_are_refused() {
    let mut p = good();
    p.retain(|(k, _)| *k != "SESSION_JWT_SECRET" && *k != "INTERNAL_API_KEYS");
    p.push(("SESSION_JWT_SECRET", "short".into()));
    p.push(("INTERNAL_API_KEYS", "abc".into()));
    let err = Settings::from_pairs(p).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
}

#[test]
fn each_key_is_declared_once_and_only_those_are_read_from_the_environment() {
    let all: Vec<&str> = SECTIONS
        .iter()
        .flat_map(|keys| keys.iter().copied())
        .collect();
    let unique: std::collections::BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a key is declared twice");
    assert!(is_key("DATABASE_URL") && is_key("TRUSTED_PROXIES"));
    assert!(!is_key("database_url") && !is_key("PATH"));
}

#[test]
fn database_budgets_have_defaults_and_ranges() {
    let s = Settings::from_pairs(good()).unwrap();
    assert_eq!(s.database, PoolSettings::default());
    assert_eq!(s.database.max_connections, 20);
    let mut p = good();
    p.push(("DB_MAX_CONNECTIONS", "8".into()));
    p.push(("DB_STATEMENT_TIMEOUT_MS", "4000".into()));
    let s = Settings::from_pairs(p).unwrap();
    assert_eq!(s.database.max_connections, 8);
    assert_eq!(s.database.statement_timeout, Duration::from_secs(4));
    let mut p = good();
    p.push(("DB_ACQUIRE_TIMEOUT_MS", "0".into()));
    p.push(("DB_LOCK_TIMEOUT_MS", "soon".into()));
    let text = Settings::from_pairs(p).unwrap_err().to_string();
    for needle in [
        "DB_ACQUIRE_TIMEOUT_MS must be a whole number of milliseconds from 100 to 60000",
        "DB_LOCK_TIMEOUT_MS must be a whole number of milliseconds from 100 to 3600000",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn the_session_policy_defaults_to_ro_beings_sessions_and_reads_its_settings() {
    let s = Settings::from_pairs(good()).unwrap();
    assert_eq!(s.session_policy, SessionPolicy::default());
    let mut pairs = good();
    pairs.extend([
        ("SESSION_JWT_AUDIENCE", "auth-server".to_string()),
        ("SESSION_JWT_ISSUER", "https://ro-being.com".to_string()),
        ("SESSION_JWT_MAX_LIFETIME_SECS", "43200".to_string()),
    ]);
    let s = Settings::from_pairs(pairs).unwrap();
    assert_eq!(s.session_policy.audience.as_deref(), Some("auth-server"));
    assert_eq!(
        s.session_policy.issuer.as_deref(),
        Some("https://ro-being.com")
    );
    assert_eq!(
        s.session_policy.max_lifetime,
        Some(std::time::Duration::from_secs(43_200))
    );
    let mut pairs = good();
    pairs.push(("SESSION_JWT_MAX_LIFETIME_SECS", "0".to_string()));
    let text = Settings::from_pairs(pairs).unwrap_err().to_string();
    assert!(text.contains("SESSION_JWT_MAX_LIFETIME_SECS"), "{text}");
}
