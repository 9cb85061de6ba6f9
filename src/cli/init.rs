//! `auth-server init`: a fresh block of the secrets this service owns, for
//! `.env`. Every value is 32 bytes from the operating system's CSPRNG.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;

/// 32 bytes from the operating system.
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A key for `INTERNAL_API_KEYS` or `WEBHOOK_SECRET`: 256 bits, URL-safe.
fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes())
}

/// Whether `name` can be printed in a comment (no line breaks or control
/// characters) and is a sensible skill name.
pub(super) fn valid_skill(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The block to paste into `.env`, for `skills` (in that order) and a token
/// encryption key named `key_id`.
pub(super) fn secrets_block(skills: &[String], key_id: &str, today: &str) -> String {
    let keys: Vec<String> = skills.iter().map(|_| random_secret()).collect();
    let mut out = format!(
        "# auth-server 비밀값 — `auth-server init`이 {today}에 만들었습니다. .env에 붙여 넣고\n\
         # git, 채팅, 티켓에는 남기지 마세요.\n\
         # auth-server secrets, made by `auth-server init` on {today}: paste them into\n\
         # .env (or the AUTH_SERVER_ENV secret); keep them out of git, chats and\n\
         # tickets. Each is 32 random bytes from the operating system.\n\n"
    );
    out.push_str(
        "# Internal API keys, one per skill, in this order (the setting holds no\n\
         # names: give each skill only its own key, sent as `Authorization: Bearer`):\n",
    );
    for (i, skill) in skills.iter().enumerate() {
        out.push_str(&format!("#   {}. {skill}\n", i + 1));
    }
    out.push_str(&format!("INTERNAL_API_KEYS={}\n\n", keys.join(",")));
    out.push_str(&format!(
        "# Tokens at rest: AES-256-GCM key `{key_id}` (id:base64 of 32 bytes). On a first\n\
         # start it stands alone. To rotate, put it FIRST and keep the current keys\n\
         # after it (TOKEN_ENCRYPTION_KEYS={key_id}:…,<old id>:…), restart, run\n\
         # `auth-server rotate-keys`, then drop the old keys.\n\
         TOKEN_ENCRYPTION_KEYS={key_id}:{}\n\n",
        STANDARD.encode(random_bytes())
    ));
    out.push_str(&format!(
        "# Signs every webhook (used only with WEBHOOK_URL); ro-being's receiver\n\
         # needs the same value.\n\
         WEBHOOK_SECRET={}\n\n",
        random_secret()
    ));
    out.push_str(
        "# The session secret is ro-being's, not made here: set the value ro-being\n\
         # signs its session JWTs with (at least 32 bytes).\n\
         #SESSION_JWT_SECRET=\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn pairs(block: &str) -> Vec<(&str, String)> {
        block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    #[test]
    fn every_block_passes_the_settings_check_and_none_repeats() {
        let skills = ["skill-calendar".to_string(), "skill-gmail".to_string()];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let block = secrets_block(&skills, "k20261130", "2026-11-30");
            let mut p = pairs(&block);
            assert_eq!(p.len(), 3, "{block}");
            for (_, v) in &p {
                assert!(seen.insert(v.clone()), "a value came twice");
            }
            p.extend([
                ("DATABASE_URL", "postgres://postgres@127.0.0.1/x".into()),
                ("PUBLIC_BASE_URL", "https://auth.ro-being.com".into()),
                ("GOOGLE_CLIENT_ID", "cid".into()),
                ("GOOGLE_CLIENT_SECRET", "csecret".into()),
                (
                    "SESSION_JWT_SECRET",
                    "zvCFfPKkxwGh5IXlDzqoSz4A1vwrst7PH0MKjY7zTKw".into(),
                ),
                ("WEBHOOK_URL", "https://ro-being.com/hooks/passport".into()),
            ]);
            let s = Settings::from_pairs(p).unwrap();
            assert_eq!(s.internal_api_keys.len(), 2);
            assert_eq!(s.token_keys[0].id, "k20261130");
            assert!(s.webhooks.is_some());
        }
    }

    #[test]
    fn skill_names_are_checked() {
        assert!(valid_skill("skill-calendar") && valid_skill("skill_gmail.v2"));
        for bad in ["", "a b", "x\n#", "a,b", &"s".repeat(65)] {
            assert!(!valid_skill(bad), "{bad:?}");
        }
    }
}
