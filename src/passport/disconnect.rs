//! Disconnect: revoke the grant at Google, then delete the connection. A
//! failed revoke is reported but never keeps the row.

use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::crypto::Field;
use crate::passport::provider::Provider;
use crate::passport::webhooks;
use crate::passport::Passport;
use crate::store::gmail_token::{self, TokenRow};
use crate::store::passport_event::{self, EventKind, NewEvent};

/// What happened to the grant at Google.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Revocation {
    Revoked,
    /// Google says the token was already invalid (revoked or expired).
    AlreadyInvalid,
    /// Revoking failed (Google unavailable, …): the grant may still exist at
    /// Google until the user removes it at myaccount.google.com.
    #[strum(serialize = "revoke_failed")]
    Failed(String),
    /// No token was stored to revoke.
    NothingToRevoke,
}

impl Revocation {
    pub(crate) fn code(&self) -> &'static str {
        self.into()
    }
}

impl Passport {
    /// Disconnect a user: revoke the grant at Google, delete the connection.
    /// `Ok(None)` when there was no connection.
    pub(crate) async fn disconnect(
        &self,
        provider: &Provider,
        user: Uuid,
    ) -> Result<Option<Revocation>, sqlx::Error> {
        // Under this instance's refresh lock; a refresh on another instance
        // finds its claim gone and stores nothing. Google is asked with no
        // database connection held.
        let lock = self.refresh_locks.get(user);
        let _guard = lock.lock().await;
        let Some(row) = gmail_token::find(&self.db, user).await? else {
            return Ok(None);
        };
        let revocation = self.revoke(&row).await;
        let mut tx = self.db.begin().await?;
        if !gmail_token::delete(&mut *tx, user).await? {
            return Ok(None); // disconnected meanwhile, by another request
        }
        let detail = match &revocation {
            Revocation::Failed(why) => Some(why.as_str()),
            _ => None,
        };
        let event = NewEvent {
            scopes_before: row.scopes.clone(),
            email_before: row.email.as_deref(),
            error_code: detail.map(|_| "revoke_failed"),
            detail,
            ..NewEvent::new(user, provider.name, EventKind::Disconnected)
        };
        passport_event::insert(&mut *tx, &event).await?;
        let facts = webhooks::Facts {
            email: row.email.as_deref(),
            revocation: Some(revocation.code()),
            ..Default::default()
        };
        let kind = webhooks::Kind::Disconnected;
        webhooks::enqueue(&mut tx, self, provider, kind, user, facts).await?;
        self.commit_for(user, tx).await?;
        metrics::counter!("passport_disconnects_total", "revocation" => revocation.code())
            .increment(1);
        tracing::info!(%user, revocation = revocation.code(), "passport disconnected");
        Ok(Some(revocation))
    }

    /// Revoke the row's grant at Google (the refresh token, else the access
    /// token).
    async fn revoke(&self, row: &TokenRow) -> Revocation {
        let user = row.user_id;
        let refresh = self
            .cipher
            .open_opt(user, Field::RefreshToken, row.refresh_token.as_deref());
        let access = self
            .cipher
            .open_opt(user, Field::AccessToken, row.access_token.as_deref());
        let token = match (refresh, access) {
            (Ok(Some(r)), _) => r,
            (Ok(None), Ok(Some(a))) => a,
            (Ok(None), Ok(None)) => return Revocation::NothingToRevoke,
            (Err(e), _) | (_, Err(e)) => {
                return Revocation::Failed(format!("the stored token cannot be decrypted: {e}"))
            }
        };
        match self.google.revoke(token.expose_secret()).await {
            Ok(()) => Revocation::Revoked,
            Err(e) if e.is_token_invalid() => Revocation::AlreadyInvalid,
            Err(e) => Revocation::Failed(e.to_string()),
        }
    }
}
