//! Disconnect: revoke the grant at Google, then delete the connection. A
//! failed revoke is reported but never keeps the row.

use secrecy::SecretString;
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::GoogleError;
use crate::passport::provider::Provider;
use crate::passport::webhooks;
use crate::state::AppState;
use crate::store::gmail_token;
use crate::store::passport_event::{self, EventKind, NewEvent};

/// What happened to the grant at Google.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// Google says the token was already invalid (revoked or expired).
    AlreadyInvalid,
    /// Revoking failed (Google unavailable, …): the grant may still exist at
    /// Google until the user removes it at myaccount.google.com.
    Failed(String),
    /// No token was stored to revoke.
    NothingToRevoke,
}

impl Revocation {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::AlreadyInvalid => "already_invalid",
            Self::Failed(_) => "revoke_failed",
            Self::NothingToRevoke => "nothing_to_revoke",
        }
    }
}

/// Disconnect a user. `Ok(None)` when there was no connection.
pub async fn disconnect(
    app: &AppState,
    provider: &Provider,
    user: Uuid,
) -> Result<Option<Revocation>, sqlx::Error> {
    // Under the row lock, so that a refresh running now cannot write the row
    // back after it is gone.
    let lock = app.refresh_locks.get(user);
    let _guard = lock.lock().await;
    let mut tx = app.db.begin().await?;
    let Some(row) = gmail_token::find_for_update(&mut *tx, user).await? else {
        return Ok(None);
    };
    let refresh = app
        .cipher
        .open_opt(user, Field::RefreshToken, row.refresh_token.as_deref());
    let access = app
        .cipher
        .open_opt(user, Field::AccessToken, row.access_token.as_deref());
    let token: Result<Option<SecretString>, _> = match (refresh, access) {
        (Ok(Some(r)), _) => Ok(Some(r)),
        (Ok(None), Ok(a)) => Ok(a),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let revocation = match token {
        Err(e) => Revocation::Failed(format!("the stored token cannot be decrypted: {e}")),
        Ok(None) => Revocation::NothingToRevoke,
        Ok(Some(t)) => match app
            .google
            .revoke(secrecy::ExposeSecret::expose_secret(&t))
            .await
        {
            Ok(()) => Revocation::Revoked,
            Err(GoogleError::Rejected { code, .. })
                if code == "invalid_token" || code == "invalid_grant" =>
            {
                Revocation::AlreadyInvalid
            }
            Err(e) => Revocation::Failed(e.to_string()),
        },
    };
    gmail_token::delete(&mut *tx, user).await?;
    let detail = match &revocation {
        Revocation::Failed(why) => Some(why.clone()),
        _ => None,
    };
    passport_event::insert(
        &mut *tx,
        &NewEvent {
            scopes_before: row.scopes.clone(),
            email_before: row.email.as_deref(),
            error_code: matches!(revocation, Revocation::Failed(_)).then_some("revoke_failed"),
            detail: detail.as_deref(),
            ..NewEvent::new(user, provider.name, EventKind::Disconnected)
        },
    )
    .await?;
    let facts = webhooks::Facts {
        email: row.email.as_deref(),
        revocation: Some(revocation.code()),
        ..Default::default()
    };
    webhooks::enqueue(
        &mut tx,
        app,
        provider.name,
        webhooks::Kind::Disconnected,
        user,
        facts,
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("passport_disconnects_total", "revocation" => revocation.code()).increment(1);
    tracing::info!(%user, revocation = revocation.code(), "passport disconnected");
    Ok(Some(revocation))
}
