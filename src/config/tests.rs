use super::*;
use secrecy::ExposeSecret;

/// Fixtures: random values, as `auth-server init` makes them (the checks
/// refuse a repeated character, a sequence or printable text as a key).
const JWT: &str = "zvCFfPKkxwGh5IXlDzqoSz4A1vwrst7PH0MKjY7zTKw";
const INTERNAL: &str = "20Ibe-AqBqGqai16KmUX4l9PbrrqXFzphAyN5tWvAR4";
const WEBHOOK: &str = "uO4iV2uKI3RfqxOPnLyoqcgpEz-HOELuPOZJ9sGeEsw";
const KEY: &str = "k1:k/tRttkasrFBdumlVAHIl0S63ebeDIeDbKdFDwtduaI=";

fn good() -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/x".into()),
        ("PUBLIC_BASE_URL", "https://auth.ro-being.com".into()),
        ("GOOGLE_CLIENT_ID", "cid".into()),
        ("GOOGLE_CLIENT_SECRET", "csecret".into()),
        ("SESSION_JWT_SECRET", JWT.into()),
        ("INTERNAL_API_KEYS", INTERNAL.into()),
        ("ALLOWED_RETURN_ORIGINS", "https://ro-being.com".into()),
        (
            "INVENTORY_URL",
            "https://ro-being.com/settings/items".into(),
        ),
        ("TOKEN_ENCRYPTION_KEYS", KEY.into()),
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
    assert!(!dbg.contains("csecret") && !dbg.contains(JWT) && !dbg.contains(INTERNAL));
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
    env.push((
        "INTERNAL_API_KEYS".into(),
        "7494875574507129510720814150441576257899".into(),
    ));
    env.push(("ALLOW_PLAINTEXT_TOKENS".into(), "true".into()));
    env.push(("GOOGLE_BREAKER_OPEN_SECS".into(), "30".into()));
    env.push(("UNRELATED_VARIABLE".into(), "ignored".into()));
    let s = Settings::from_layers(BTreeMap::new(), env).unwrap();
    assert!(s.allow_plaintext_tokens);
    assert_eq!(s.google_calls.breaker_open, Duration::from_secs(30));
    assert_eq!(
        s.internal_api_keys[0].expose_secret(),
        "7494875574507129510720814150441576257899"
    );
}

#[test]
fn numbers_out_of_range_are_reported_with_their_unit() {
    let mut p = good();
    p.push(("GOOGLE_HTTP_TIMEOUT_SECS", "0".into()));
    p.push(("RATE_LIMIT_TOKEN_USER_PER_MIN", "-1".into()));
    p.push(("WEBHOOK_URL", "https://ro-being.com/hooks".into()));
    p.push(("WEBHOOK_SECRET", WEBHOOK.into()));
    p.push(("WEBHOOK_RETRY_BASE_MS", "5".into()));
    p.push(("SWEEP_PER_MINUTE", "lots".into()));
    p.push(("GOOGLE_RISC_KEY_REFETCH_SECS", "0".into()));
    let text = Settings::from_pairs(p).unwrap_err().to_string();
    for needle in [
        "GOOGLE_RISC_KEY_REFETCH_SECS must be a whole number of seconds from 1 to 3600",
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
    assert!(!dbg.contains("k/tRttka"), "{dbg}");
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
    p.push(("DB_READ_BATCHES", "2".into()));
    let s = Settings::from_pairs(p).unwrap();
    assert_eq!(s.database.max_connections, 8);
    assert_eq!(s.database.read_batches, 2);
    assert_eq!(s.database.statement_timeout, Duration::from_secs(4));
    let mut p = good();
    p.push(("DB_ACQUIRE_TIMEOUT_MS", "0".into()));
    p.push(("DB_LOCK_TIMEOUT_MS", "soon".into()));
    p.push(("DB_READ_BATCHES", "0".into()));
    let text = Settings::from_pairs(p).unwrap_err().to_string();
    for needle in [
        "DB_ACQUIRE_TIMEOUT_MS must be a whole number of milliseconds from 100 to 60000",
        "DB_LOCK_TIMEOUT_MS must be a whole number of milliseconds from 100 to 3600000",
        "DB_READ_BATCHES must be",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

/// `.env.example` as it is on disk (not as built in).
fn env_example() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example");
    secrets::example_settings(&std::fs::read_to_string(path).expect(".env.example is readable"))
}

#[test]
fn every_secret_in_env_example_is_a_placeholder_the_start_refuses() {
    let example = env_example();
    let mut p = good();
    p.push(("WEBHOOK_URL", "https://ro-being.com/hooks/passport".into()));
    let mut given = Vec::new();
    for key in secrets::PLACEHOLDER_KEYS {
        let (_, value) = example
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!(".env.example gives no example for {key}"));
        // Each carries a marker, so an edited copy is refused as well.
        for item in value.split(',') {
            let lower = item.to_ascii_lowercase();
            assert!(
                secrets::MARKERS.iter().any(|m| lower.contains(m)),
                "{key}: `{item}` carries no placeholder marker"
            );
        }
        p.retain(|(k, _)| k != key);
        p.push((key, value.clone()));
        given.push(value.clone());
    }
    let err = Settings::from_pairs(p).unwrap_err();
    for key in secrets::PLACEHOLDER_KEYS {
        assert!(
            err.problems
                .iter()
                .any(|p| p.starts_with(key) && p.contains("placeholder copied from .env.example")),
            "{key} not named as a placeholder in:\n{err}"
        );
    }
    let text = err.to_string();
    for value in given.iter().flat_map(|v| v.split(',')) {
        let secret = value.split_once(':').map_or(value, |(_, key)| key);
        assert!(
            !text.contains(secret),
            "the value `{secret}` is echoed:\n{text}"
        );
    }
}

#[test]
fn the_built_in_example_values_are_refused_even_without_a_marker() {
    let values = secrets::example_values(include_str!("../../.env.example"));
    assert!(values.len() >= 6, "{values:?}");
    assert!(values.iter().all(|v| secrets::is_placeholder(v)));
    // The same rule for a file whose placeholders carry no marker.
    let other = secrets::example_values(
        "INTERNAL_API_KEYS=skill-key-one,skill-key-two\n#WEBHOOK_SECRET=shh\nRUST_LOG=info",
    );
    assert_eq!(other, ["skill-key-one", "skill-key-two", "shh"]);
}

#[test]
fn weak_secrets_are_refused_with_the_rule_never_the_value() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let sequence: Vec<u8> = (0..32).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "SESSION_JWT_SECRET",
            "x".repeat(40),
            "single character (or byte) repeated",
        ),
        (
            "SESSION_JWT_SECRET",
            "rQ8sVt2LmW9".into(),
            "at least 32 bytes",
        ),
        ("INTERNAL_API_KEYS", "a".repeat(30), "single character"),
        (
            "INTERNAL_API_KEYS",
            "0123456789abcdefghijklmnopqrstuvwxyz".into(),
            "fewer than 128 bits",
        ),
        (
            "INTERNAL_API_KEYS",
            "Skill7!".repeat(6),
            "fewer than 128 bits",
        ),
        // 19 random base64url characters: 114 bits, estimated 125 (the
        // estimate is an upper bound: `_` counts as 33 symbols).
        (
            "INTERNAL_API_KEYS",
            "Xk3_q9Lw0ZpT7bN2vR5".into(),
            "fewer than 128 bits",
        ),
        ("INTERNAL_API_KEYS", "short".into(), "at least 16 bytes"),
        (
            "INTERNAL_API_KEYS",
            "test-internal-key-0123456789".into(),
            "fewer than 128 bits",
        ),
        ("WEBHOOK_SECRET", "w".repeat(40), "single character"),
        (
            "WEBHOOK_SECRET",
            "0123456789".repeat(4),
            "fewer than 128 bits",
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            format!("k1:{}", b64(&[0; 32])),
            "single character (or byte)",
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            format!("k1:{}", b64(&sequence)),
            "fewer than 128 bits",
        ),
        (
            "TOKEN_ENCRYPTION_KEYS",
            format!("k1:{}", b64(b"This is the t1 test key 32 byte!")),
            "printable text",
        ),
    ];
    for (key, value, rule) in cases {
        let mut p = good();
        p.push(("WEBHOOK_URL", "https://ro-being.com/hooks/passport".into()));
        p.push(("WEBHOOK_SECRET", WEBHOOK.into()));
        p.retain(|(k, _)| *k != key);
        p.push((key, value.clone()));
        let err = Settings::from_pairs(p).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{key}={value}: {err}");
        let problem = &err.problems[0];
        assert!(
            problem.starts_with(key) && problem.contains(rule),
            "{key}={value}: {problem}"
        );
        let secret = value.strip_prefix("k1:").unwrap_or(&value);
        assert!(!problem.contains(secret), "{problem}");
    }
}

#[test]
fn only_the_active_encryption_key_must_be_strong() {
    use base64::Engine;
    let text_key =
        base64::engine::general_purpose::STANDARD.encode(b"This is the t1 test key 32 byte!");
    // An older key only opens what was sealed under it, until rotate-keys.
    let mut p = good();
    p.retain(|(k, _)| *k != "TOKEN_ENCRYPTION_KEYS");
    p.push(("TOKEN_ENCRYPTION_KEYS", format!("{KEY},old:{text_key}")));
    assert_eq!(Settings::from_pairs(p).unwrap().token_keys.len(), 2);
    // A placeholder is refused anywhere in the list, by id.
    let mut p = good();
    p.retain(|(k, _)| *k != "TOKEN_ENCRYPTION_KEYS");
    p.push((
        "TOKEN_ENCRYPTION_KEYS",
        format!("{KEY},k0:REPLACE-WITH-32-RANDOM-BYTES-BASE64="),
    ));
    let err = Settings::from_pairs(p).unwrap_err();
    assert_eq!(
        err.problems,
        ["TOKEN_ENCRYPTION_KEYS: key `k0` is a placeholder copied from .env.example; make a real one with `auth-server init`"]
    );
}

#[test]
fn the_randomness_estimate() {
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Random values reach their nominal size (or more: an upper bound).
    assert!(secrets::text_bits(INTERNAL) >= 256.0);
    assert!(near(
        secrets::text_bits("3f9a0c7e5b1d2468ace0f13579bdf024"),
        128.0
    ));
    let key = crate::crypto::parse_keys(KEY).unwrap();
    assert!(near(secrets::bytes_bits(key[0].key.expose_secret()), 256.0));
    // Patterns count once.
    assert!(near(secrets::text_bits("0123456789"), 2.0 * 10f64.log2()));
    assert!(near(secrets::text_bits("xyzxyzxyzxyz"), 3.0 * 26f64.log2()));
    assert!(
        near(secrets::text_bits("abcabcabcabc"), 3.0 * 4.0),
        "hex: 16 symbols"
    );
    assert!(near(secrets::text_bits("acegikmoqsuw"), 2.0 * 26f64.log2()));
    assert!(near(secrets::text_bits("zzzz"), 26f64.log2()));
    // Runs of five or more count two, wherever they are.
    assert!(near(
        secrets::text_bits("Xq7-aaaaaaaaaa-3kP"),
        10.0 * 95f64.log2()
    ));
    assert!(near(
        secrets::text_bits("Xq7-1234-3kP"),
        12.0 * 95f64.log2()
    ));
    assert!(near(
        secrets::text_bits("key-987654321"),
        6.0 * 69f64.log2()
    ));
    let sequence: Vec<u8> = (0..32).collect();
    assert!(near(secrets::bytes_bits(&sequence), 16.0));
    // Classes add up: lower, upper, digits, others.
    assert!(near(secrets::text_bits("aZ3!"), 4.0 * 95f64.log2()));
    // Random 32-byte values, as `auth-server init` makes them, always pass.
    for _ in 0..2000 {
        let bytes: [u8; 32] = rand::random();
        assert!(secrets::key_bytes(&bytes).is_none());
        use base64::Engine;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(secrets::own_secret(&text, 32).is_none(), "{text}");
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

/// A second random key, as `auth-server init` makes them.
const INTERNAL_2: &str = "pQ3v9Xk2LmN8rT5wYz1aB4cD7eF0gH6iJ-kL_mNoPqR";

fn with_keys(keys: &str) -> Vec<(&'static str, String)> {
    let mut p = good();
    p.retain(|(k, _)| *k != "INTERNAL_API_KEYS");
    p.push(("INTERNAL_API_KEYS", keys.into()));
    p
}

#[test]
fn internal_keys_take_names_and_plain_keys_are_named_by_their_fingerprint() {
    let s = Settings::from_pairs(with_keys(&format!(
        "skill-calendar:{INTERNAL}, {INTERNAL_2}"
    )))
    .unwrap();
    let names: Vec<&str> = s.internal_key_names.iter().map(|n| &**n).collect();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(INTERNAL_2.as_bytes());
    let fingerprint = format!(
        "key-{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    );
    assert_eq!(names, ["skill-calendar", fingerprint.as_str()]);
    assert_eq!(s.internal_api_keys[0].expose_secret(), INTERNAL);
    assert_eq!(s.internal_api_keys[1].expose_secret(), INTERNAL_2);
    // The names are shown, the keys never.
    let debug = format!("{s:?}");
    assert!(
        debug.contains("skill-calendar") && debug.contains(&fingerprint),
        "{debug}"
    );
    assert!(
        !debug.contains(INTERNAL) && !debug.contains(INTERNAL_2),
        "{debug}"
    );
}

#[test]
fn a_key_holding_a_colon_is_written_after_a_name() {
    let key = format!("{INTERNAL}:{INTERNAL_2}");
    let s = Settings::from_pairs(with_keys(&format!("skill-gmail:{key}"))).unwrap();
    assert_eq!(&*s.internal_key_names[0], "skill-gmail");
    assert_eq!(s.internal_api_keys[0].expose_secret(), key);
}

#[test]
fn a_key_without_a_name_holding_a_colon_is_refused_without_showing_any_of_it() {
    // Given without a name, the part before `:` is part of the secret.
    let secret_part = "Qx7-Secret.Part/9Zk";
    let err = Settings::from_pairs(with_keys(&format!(
        "skill-gmail:{INTERNAL},{secret_part}:{INTERNAL_2}"
    )))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("INTERNAL_API_KEYS: key 2 of 2: the part before `:` is not a key name"),
        "{text}"
    );
    for part in [secret_part, "Qx7", INTERNAL_2] {
        assert!(!text.contains(part), "`{part}` shown in:\n{text}");
    }
}

#[test]
fn bad_and_duplicate_key_names_and_duplicate_keys_are_refused_by_position() {
    let err = Settings::from_pairs(with_keys(&format!(
        "Skill-Calendar:{INTERNAL},skill-gmail:{INTERNAL},skill-gmail:{INTERNAL_2},-x:{INTERNAL_2}"
    )))
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "INTERNAL_API_KEYS: key 1 of 4: the part before `:` is not a key name",
        "INTERNAL_API_KEYS: key 3 of 4: the name `skill-gmail` is used twice",
        "INTERNAL_API_KEYS: key 4 of 4: the part before `:` is not a key name",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    assert_eq!(err.problems.len(), 3, "{text}");
    let err = Settings::from_pairs(with_keys(&format!(
        "skill-calendar:{INTERNAL},skill-gmail:{INTERNAL}"
    )))
    .unwrap_err();
    assert_eq!(
        err.problems,
        ["INTERNAL_API_KEYS: key 2 of 2 (`skill-gmail`): the same key is listed twice; give each skill its own key"]
    );
    assert!(!err.to_string().contains(INTERNAL));
}

#[test]
fn a_named_weak_key_is_refused_like_a_plain_one() {
    let err =
        Settings::from_pairs(with_keys("skill-calendar:change-me-skill-calendar-key")).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(
        err.problems[0].starts_with("INTERNAL_API_KEYS: key 1 of 1 is a placeholder"),
        "{err}"
    );
}

#[test]
fn the_ledger_is_kept_as_long_as_the_audit_trail_unless_told_otherwise() {
    let day = Duration::from_secs(86_400);
    let mut p = good();
    p.push(("EVENT_RETENTION_DAYS", "90".into()));
    let s = Settings::from_pairs(p.clone()).unwrap();
    assert_eq!(s.retention.ledger, Some(day * 90));
    assert_eq!(s.ledger.flush_every, Duration::from_secs(5));
    p.push(("LEDGER_RETENTION_DAYS", "0".into()));
    p.push(("LEDGER_FLUSH_SECS", "0".into()));
    let err = Settings::from_pairs(p.clone()).unwrap_err();
    assert_eq!(
        err.problems,
        ["LEDGER_FLUSH_SECS must be a whole number of seconds from 1 to 300"]
    );
    p.retain(|(k, _)| *k != "LEDGER_FLUSH_SECS");
    assert_eq!(Settings::from_pairs(p).unwrap().retention.ledger, None);
}
