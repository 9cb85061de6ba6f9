//! Property-based fuzzing (proptest) of the parsers we own: scope lists,
//! `return_to` validation, the stored-token envelope, the callback query, the
//! session JWT. `PROPTEST_CASES` raises the budget (default 4000 per property).

use auth_server::crypto::{parse_keys, Field, TokenCipher};
use auth_server::http::auth::verify_session;
use auth_server::http::query;
use auth_server::passport::flow::flow_cookie_name;
use auth_server::passport::return_to;
use auth_server::scopes::{ScopeSet, GOOGLE_SCOPE_PREFIX};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use url::Url;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn allowed() -> Vec<url::Origin> {
    vec![
        Url::parse("https://ro-being.com").unwrap().origin(),
        Url::parse("http://127.0.0.1:51123").unwrap().origin(),
    ]
}

/// URL-ish strings: real prefixes, then anything, including the characters
/// attackers use (backslashes, @, %, control characters, unicode dots).
fn urlish() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "https://ro-being.com",
        "https://ro-being.com.",
        "https://ro-being.com@",
        "https:",
        "//",
        "https:\\\\",
        "http://127.0.0.1:51123",
        "HTTPS://RO-BEING.COM",
        "https://xn--ro-being",
        "javascript:",
        "",
    ]);
    (
        prefix,
        "[a-z0-9./@%\\\\:?#&=_\\-\u{3002}\u{ff0e}\t\r\n ]{0,40}",
    )
        .prop_map(|(p, s)| format!("{p}{s}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn scope_lists_never_panic_and_round_trip(input in "[ -~\u{80}-\u{10ffff}]{0,120}") {
        let _ = ScopeSet::from_google(&input);
        let _ = ScopeSet::from_json(Some(&serde_json::Value::String(input.clone())));
        if let Ok(set) = ScopeSet::parse_known([input.as_str()]) {
            for s in set.iter() {
                prop_assert!(s == "openid" || s.starts_with(GOOGLE_SCOPE_PREFIX), "{s}");
            }
            let again = ScopeSet::parse_known([set.to_request_param().as_str()]).unwrap();
            prop_assert_eq!(&again, &set);
            prop_assert_eq!(ScopeSet::from_json(Some(&set.to_json())), set);
        }
    }

    #[test]
    fn return_to_only_ever_accepts_allowed_origins(raw in urlish()) {
        if let Ok(u) = return_to::validate(&raw, &allowed()) {
            prop_assert!(allowed().contains(&u.origin()), "{raw} -> {u}");
            prop_assert!(u.username().is_empty() && u.password().is_none(), "{raw}");
            prop_assert!(matches!(u.scheme(), "http" | "https"));
            prop_assert!(!raw.contains('\\') && !raw.chars().any(|c| c.is_control()));
        }
    }

    #[test]
    fn return_to_never_panics_on_anything(raw in "\\PC{0,200}") {
        let _ = return_to::validate(&raw, &allowed());
    }

    #[test]
    fn envelopes_round_trip_and_tampering_never_yields_other_plaintext(
        plain in "\\PC{0,80}",
        flip in 0usize..200,
        junk in "\\PC{0,120}",
    ) {
        let keys = parse_keys("f1:ZnV6eiBrZXkgZm9yIHByb3BlcnR5IHRlc3RzIDMyYiE=").unwrap();
        let c = TokenCipher::new(&keys, false);
        let user = uuid::Uuid::from_u128(7);
        let sealed = c.seal(user, Field::RefreshToken, &plain);
        let opened = c.open(user, Field::RefreshToken, &sealed).unwrap();
        prop_assert_eq!(opened.expose_secret(), plain.as_str());
        // Change one character of the envelope.
        let mut chars: Vec<char> = sealed.chars().collect();
        let i = flip % chars.len();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        if tampered != sealed {
            match c.open(user, Field::RefreshToken, &tampered) {
                Err(_) => {}
                Ok(p) => prop_assert!(
                    p.expose_secret() == plain || !tampered.starts_with("enc:v1:"),
                    "tampering gave another plaintext"
                ),
            }
        }
        // Arbitrary stored values never panic.
        let _ = c.open(user, Field::AccessToken, &junk);
        let _ = c.open(user, Field::AccessToken, &format!("enc:v1:{junk}"));
        let _ = c.open(user, Field::AccessToken, &format!("enc:v1:f1:{junk}"));
    }

    #[test]
    fn callback_queries_never_panic_and_refuse_duplicates(raw in "[ -~]{0,300}") {
        if let Ok(map) = query::parse(Some(&raw)) {
            let n = url::form_urlencoded::parse(raw.as_bytes()).count();
            prop_assert_eq!(map.len(), n, "no duplicate was accepted");
        }
        let name = flow_cookie_name(&raw);
        prop_assert!(name.len() == "passport_flow_".len() + 16);
        prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }

    #[test]
    fn session_tokens_never_panic_and_junk_is_refused(raw in "[A-Za-z0-9_\\-.=]{0,200}") {
        let policy = auth_server::config::SessionPolicy::default();
        prop_assert!(verify_session(&raw, b"a-secret-of-at-least-thirty-two-bytes!!", &policy).is_err());
    }
}
