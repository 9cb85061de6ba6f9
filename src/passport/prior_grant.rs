//! Whose is the stored grant? A row adopted from the old service may not say
//! which Google account its grant belongs to: no `google_sub` (or a blank
//! one), at most an email. An email alone does not place a grant (a Google
//! account's address can change), so before a consent keeps, replaces or
//! revokes such a row's refresh token, Google is asked whose it is: the
//! token is refreshed once and userinfo read with the access token this
//! gives. Only a refresh token whose account is known is ever kept for the
//! new connection, and only one known to be another account's is revoked
//! (docs/security.md, "A consent of another account").

use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::crypto::Field;
use crate::passport::provider::Provider;
use crate::passport::Passport;
use crate::store::gmail_token::{self, TokenRow};

/// What Google said about a stored refresh token whose row has no subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vouched {
    /// The stored value (as sealed in the row) that was asked about.
    refresh_token: String,
    /// Google's subject of the account it belongs to.
    sub: String,
}

/// A stored identity value, when it names something: `None` for a missing,
/// empty or blank value (the old service wrote `''` for "unknown").
pub(crate) fn known(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The Google subject the row's grant belongs to, if the row says.
pub(crate) fn known_sub(row: &TokenRow) -> Option<&str> {
    known(&row.google_sub)
}

/// `row`, with the subject Google vouched for when the row has none and
/// still holds the refresh token that was asked about.
pub(crate) fn with_vouched(mut row: TokenRow, vouched: Option<&Vouched>) -> TokenRow {
    if let Some(v) = vouched {
        if known_sub(&row).is_none() && row.refresh_token.as_deref() == Some(&v.refresh_token) {
            row.google_sub = Some(v.sub.clone());
        }
    }
    row
}

impl Passport {
    /// Ask Google whose refresh token `user_id`'s row holds, when the row
    /// has no subject (an email alone does not count). `None`: there is
    /// nothing to ask (no row, a row with a subject, no refresh token) or
    /// Google could not say (the token is refused, Google fails): then the
    /// token is neither kept nor revoked.
    pub(crate) async fn vouch_stored_grant(
        &self,
        provider: &Provider,
        user_id: Uuid,
    ) -> Result<Option<Vouched>, sqlx::Error> {
        let Some(row) = gmail_token::find(&self.db, user_id).await? else {
            return Ok(None);
        };
        if known_sub(&row).is_some() {
            return Ok(None);
        }
        let Some(stored) = row.refresh_token else {
            return Ok(None);
        };
        let sub = self
            .account_of_refresh_token(provider, user_id, &stored)
            .await;
        Ok(sub.map(|sub| Vouched {
            refresh_token: stored,
            sub,
        }))
    }

    /// Google's subject for a sealed refresh token, if Google can say.
    async fn account_of_refresh_token(
        &self,
        provider: &Provider,
        user_id: Uuid,
        sealed: &str,
    ) -> Option<String> {
        let refresh = match self.cipher.open(user_id, Field::RefreshToken, sealed) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%user_id, error = %e, "stored refresh token cannot be opened");
                return None;
            }
        };
        let redirect_uri = self.settings.redirect_uri(provider.name);
        let asked = async {
            let tokens = self
                .google
                .refresh(&redirect_uri, refresh.expose_secret())
                .await?;
            self.google
                .userinfo(tokens.access_token.expose_secret())
                .await
        };
        match asked.await {
            Ok(info) => Some(info.sub),
            Err(e) => {
                tracing::info!(%user_id, error = %e, "the stored grant's account could not be established; its refresh token is not kept");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::gmail_token::ConnectionStatus;

    fn row(sub: Option<&str>, email: Option<&str>, refresh: Option<&str>) -> TokenRow {
        TokenRow {
            user_id: Uuid::nil(),
            email: email.map(str::to_string),
            google_sub: sub.map(str::to_string),
            access_token: None,
            refresh_token: refresh.map(str::to_string),
            token_type: None,
            expires_at: None,
            scopes: None,
            scopes_mac: None,
            status: ConnectionStatus::Active,
            last_error: None,
            last_refreshed_at: None,
            consented_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_vouched_subject_is_used_only_for_the_token_asked_about_and_a_row_without_one() {
        let v = Vouched {
            refresh_token: "1//a".into(),
            sub: "sub-a".into(),
        };
        let bare = with_vouched(row(None, Some(" "), Some("1//a")), Some(&v));
        assert_eq!(bare.google_sub.as_deref(), Some("sub-a"));
        // The row changed meanwhile: another token, not vouched for.
        let other = with_vouched(row(None, None, Some("1//b")), Some(&v));
        assert_eq!(known_sub(&other), None);
        // A row with a subject keeps it.
        let named = with_vouched(row(Some("sub-b"), None, Some("1//a")), Some(&v));
        assert_eq!(named.google_sub.as_deref(), Some("sub-b"));
        assert_eq!(known_sub(&row(Some(""), None, None)), None);
        assert_eq!(known_sub(&row(Some(" "), Some(""), None)), None);
        assert_eq!(known(&Some(" ".into())), None);
        // An email alone is no subject: the token is still asked about.
        let by_email = with_vouched(
            row(Some(""), Some("old@example.com"), Some("1//a")),
            Some(&v),
        );
        assert_eq!(by_email.google_sub.as_deref(), Some("sub-a"));
        assert_eq!(known(&Some(" sub-c ".into())), Some("sub-c"));
    }
}
