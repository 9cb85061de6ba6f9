//! The state of one user's connection, as the status API and the item page show it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::passport::cache::Cached;
use crate::passport::provider::Provider;
use crate::passport::token::TokenError;
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{ConnectionStatus, ReauthCause};
use crate::store::passport_event::EventKind;
use crate::store::{gmail_token, passport_event};

/// A connection's state, computed from its row and the provider's scopes.
#[derive(Debug, Clone)]
pub(crate) struct PassportStatus {
    pub connected: bool,
    pub email: Option<String>,
    pub status: Option<ConnectionStatus>,
    pub granted: ScopeSet,
    pub missing: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
    /// Why a connection that is not `active` needs 재인증 (from `last_error`).
    pub cause: Option<ReauthCause>,
}

impl PassportStatus {
    /// Something the user can fix with 재인증: not connected, a broken grant or
    /// a missing scope.
    pub(crate) fn needs_reauth(&self) -> bool {
        self.status != Some(ConnectionStatus::Active) || !self.missing.is_empty()
    }
}

impl Passport {
    /// The state of one user's connection.
    pub(crate) async fn status(
        &self,
        provider: &Provider,
        user_id: Uuid,
    ) -> Result<PassportStatus, TokenError> {
        // Every entry of the token cache is an `active` row whose scopes were
        // verified, read under the generation guard and invalidated on any
        // change: what the database would say, without reading it.
        if let Some(c) = self.token_cache.fresh(user_id) {
            return Ok(status_of_cached(provider, &c));
        }
        let generation = self.token_cache.generation();
        let Some(row) = gmail_token::find(&self.db, user_id).await? else {
            return Ok(status_of(provider, None));
        };
        // Scopes no MAC vouches for are checked with Google before they are
        // shown; a grant Google refused meanwhile is shown as it is now marked.
        let row = match self.verified(provider, row).await {
            Ok(row) => {
                self.remember_row(generation, &row);
                Some(row)
            }
            Err(TokenError::ReauthRequired(_) | TokenError::NotConnected) => {
                gmail_token::find(&self.db, user_id).await?
            }
            Err(e) => return Err(e),
        };
        Ok(status_of(provider, row))
    }

    /// The emails of the latest account change, for the result banner.
    pub(crate) async fn last_account_change(
        &self,
        provider: &Provider,
        user_id: Uuid,
    ) -> Result<Option<(Option<String>, Option<String>)>, sqlx::Error> {
        let events = passport_event::recent_for_user(&self.db, user_id, provider.name, 5).await?;
        Ok(events
            .into_iter()
            .find(|e| e.kind == EventKind::AccountChanged)
            .map(|e| (e.email_before, e.email_after)))
    }
}

/// The status of a connection the token cache holds: `active`, nothing to say
/// about a cause.
fn status_of_cached(provider: &Provider, c: &Cached) -> PassportStatus {
    let granted = (*c.scopes).clone();
    PassportStatus {
        connected: true,
        email: c.email.clone(),
        status: Some(ConnectionStatus::Active),
        missing: provider.scopes.missing_from(&granted),
        granted,
        expires_at: Some(c.expires_at),
        cause: None,
    }
}

fn status_of(provider: &Provider, row: Option<gmail_token::TokenRow>) -> PassportStatus {
    match row {
        None => PassportStatus {
            connected: false,
            email: None,
            status: None,
            granted: ScopeSet::new(),
            missing: provider.scopes.clone(),
            expires_at: None,
            cause: None,
        },
        Some(row) => {
            let granted = ScopeSet::from_json(row.scopes.as_ref());
            let cause = (row.status != ConnectionStatus::Active).then(|| row.reauth_cause());
            PassportStatus {
                cause,
                connected: true,
                missing: provider.scopes.missing_from(&granted),
                granted,
                email: row.email,
                status: Some(row.status),
                expires_at: row.expires_at,
            }
        }
    }
}
