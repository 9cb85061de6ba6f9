//! Validation of `return_to`: only absolute http(s) URLs whose parsed origin is
//! one of the allowed origins. Never a string-prefix match.

use url::{Origin, Url};

/// Longest `return_to` accepted.
pub(crate) const MAX_RETURN_TO_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReturnToError {
    #[error("return_to is too long")]
    TooLong,
    #[error("return_to must be an absolute http(s) URL")]
    NotAbsolute,
    #[error("return_to contains characters that are not allowed")]
    BadCharacters,
    #[error("return_to carries credentials")]
    Credentials,
    #[error("return_to points outside the allowed origins")]
    OriginNotAllowed,
}

/// Parse and check a `return_to` value against the allowed origins.
pub fn validate(raw: &str, allowed: &[Origin]) -> Result<Url, ReturnToError> {
    if raw.len() > MAX_RETURN_TO_LEN {
        return Err(ReturnToError::TooLong);
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(ReturnToError::BadCharacters);
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(ReturnToError::NotAbsolute);
    }
    let url = Url::parse(raw).map_err(|_| ReturnToError::NotAbsolute)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ReturnToError::NotAbsolute);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnToError::Credentials);
    }
    if !allowed.contains(&url.origin()) {
        return Err(ReturnToError::OriginNotAllowed);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Origin> {
        vec![
            Url::parse("https://ro-being.com").unwrap().origin(),
            Url::parse("http://127.0.0.1:51123").unwrap().origin(),
        ]
    }

    #[test]
    fn accepts_allowed_origins() {
        for ok in [
            "https://ro-being.com/settings/items?tab=gmail",
            "https://RO-BEING.com/x",
            "https://ro-being.com:443/x",
            "http://127.0.0.1:51123/passport/gmail",
        ] {
            assert!(validate(ok, &allowed()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_lookalikes_and_tricks() {
        for bad in [
            "https://ro-being.com.evil.io/",
            "//evil.io/",
            "https:evil.io",
            "https:/evil.io",
            "https:\\\\evil.io",
            "https://evil.io\\@ro-being.com/",
            "https://ro-being.com@evil.io/",
            "https://user:pw@ro-being.com/",
            "https://ro-being.com%2eevil.io/",
            "https://evil.io/?https://ro-being.com",
            "javascript:alert(1)",
            "/passport/gmail",
            "http://ro-being.com/",
            "https://ro-being.com:8443/",
            "http://127.0.0.1:51124/",
            " https://ro-being.com/",
            "https://ro-being.com/\n",
            "",
        ] {
            assert!(validate(bad, &allowed()).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            validate(
                &format!("https://ro-being.com/{}", "a".repeat(3000)),
                &allowed()
            ),
            Err(ReturnToError::TooLong)
        );
    }
}
