//! Access tokens for skills: scope checks, refresh when close to expiry,
//! single flight per user (inside the process and across processes), and
//! precise failures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::{GoogleError, Tokens};
use crate::passport::cache::Cached;
use crate::passport::provider::Provider;
use crate::passport::webhooks;
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{self, ConnectionStatus, ReauthCause, TokenRow};
use crate::store::passport_event::{self, EventKind, NewEvent};

/// How many times a refresh is tried when Google is unavailable.
pub(crate) const REFRESH_ATTEMPTS: u32 = 3;
/// First backoff between attempts (doubled each time, with jitter).
pub(crate) const REFRESH_BACKOFF: Duration = Duration::from_millis(200);
/// Time for all attempts of one refresh together (below the 30 s request
/// timeout).
pub(crate) const REFRESH_BUDGET: Duration = Duration::from_secs(20);

/// A token handed to a skill.
pub(crate) struct IssuedToken {
    pub access_token: SecretString,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: ScopeSet,
    pub email: Option<String>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why no token was handed out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("no connection for this user")]
    NotConnected,
    #[error("the connection lacks scopes: {0}")]
    ScopeMissing(ScopeSet),
    /// Google refused the refresh token (or there is none): 재인증 needed.
    #[error("re-authorization required: {0}")]
    ReauthRequired(ReauthCause),
    /// Google unavailable after retries, or in the cool-down after a failure.
    #[error("google unavailable: {source}")]
    Unavailable {
        source: GoogleError,
        retry_after: Duration,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

fn is_fresh(row: &TokenRow, margin: Duration) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or_default();
    match (&row.access_token, row.expires_at) {
        (Some(t), Some(exp)) if !t.is_empty() => exp > Utc::now() + margin,
        _ => false,
    }
}

fn check_usable(row: &TokenRow, requested: &ScopeSet) -> Result<ScopeSet, TokenError> {
    let granted = ScopeSet::from_json(row.scopes.as_ref());
    let missing = requested.missing_from(&granted);
    if !missing.is_empty() {
        return Err(TokenError::ScopeMissing(missing));
    }
    if row.status != ConnectionStatus::Active {
        return Err(TokenError::ReauthRequired(row.reauth_cause()));
    }
    Ok(granted)
}

fn issue(app: &Passport, row: &TokenRow, granted: ScopeSet) -> Result<IssuedToken, TokenError> {
    let access = app.cipher.open(
        row.user_id,
        Field::AccessToken,
        row.access_token.as_deref().unwrap_or_default(),
    )?;
    Ok(IssuedToken {
        access_token: access,
        expires_at: row.expires_at,
        scopes: granted,
        email: row.email.clone(),
    })
}

/// The transaction a refresh holds its row lock in.
type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl Passport {
    /// A token for `user` that covers `requested` and stays valid for at least
    /// the refresh margin, refreshing it first when needed.
    pub(crate) async fn token_for(
        &self,
        provider: &Provider,
        user: Uuid,
        requested: &ScopeSet,
    ) -> Result<IssuedToken, TokenError> {
        let margin = self.settings.refresh_margin;
        if let Some(c) = self.token_cache.get(user, margin) {
            return from_cache(c, requested);
        }
        let generation = self.token_cache.generation();
        let row = gmail_token::find(&self.db, user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let granted = check_usable(&row, requested)?;
        if !is_fresh(&row, margin) {
            return self.refresh(provider, user, requested, false).await;
        }
        let issued = issue(self, &row, granted)?;
        self.remember(user, generation, &issued);
        Ok(issued)
    }

    /// Keep a token read from the database in the cache, unless the row
    /// changed while it was read.
    fn remember(&self, user: Uuid, generation: u64, issued: &IssuedToken) {
        let Some(expires_at) = issued.expires_at else {
            return;
        };
        let entry = Cached {
            read_at: std::time::Instant::now(),
            access_token: issued.access_token.clone(),
            expires_at,
            scopes: self.token_cache.intern(issued.scopes.clone()),
            email: issued.email.clone(),
        };
        self.token_cache
            .insert_if_unchanged(user, generation, entry);
    }

    /// Refresh the user's token unless another caller just did; `force`
    /// refreshes even a fresh token (the doctor's live check, the sweep).
    ///
    /// Single flight: inside this process one caller per user goes on and the
    /// others wait on its lock; across processes the row lock does the same.
    pub(crate) async fn refresh(
        &self,
        provider: &Provider,
        user: Uuid,
        requested: &ScopeSet,
        force: bool,
    ) -> Result<IssuedToken, TokenError> {
        let lock = self.refresh_locks.get(user);
        let _guard = lock.lock().await;
        if !force {
            if let Some((retry_after, source)) = self.refresh_cooldowns.get(user) {
                return Err(TokenError::Unavailable {
                    source,
                    retry_after,
                });
            }
        }
        let mut tx = self.db.begin().await?;
        let row = gmail_token::find_for_update(&mut *tx, user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let granted = check_usable(&row, requested)?;
        if !force && is_fresh(&row, self.settings.refresh_margin) {
            tx.commit().await?;
            return issue(self, &row, granted);
        }
        let stored = row.refresh_token.as_deref();
        let Some(refresh_token) = self.cipher.open_opt(user, Field::RefreshToken, stored)? else {
            return Err(self
                .record_broken(tx, provider, &row, ReauthCause::NoRefreshToken)
                .await?);
        };
        match self.call_refresh(provider, user, &refresh_token).await {
            Ok(tokens) => {
                let granted = self
                    .store_refresh(tx, provider, &row, &refresh_token, &tokens)
                    .await?
                    .unwrap_or(granted);
                issued_after_refresh(tokens, granted, requested, &row)
            }
            Err(e) if e.is_invalid_grant() => {
                let description = e.description().unwrap_or_default().to_string();
                let cause = ReauthCause::InvalidGrant { description };
                Err(self.record_broken(tx, provider, &row, cause).await?)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(self.record_unavailable(provider, user, e).await?)
            }
        }
    }

    /// Ask Google, retrying while it is unavailable, all within
    /// [`REFRESH_BUDGET`] (below the request timeout, so the caller always
    /// gets its JSON answer).
    async fn call_refresh(
        &self,
        provider: &Provider,
        user: Uuid,
        refresh_token: &SecretString,
    ) -> Result<Tokens, GoogleError> {
        let redirect_uri = self.settings.redirect_uri(provider.name);
        let retries = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = self
                    .google
                    .refresh(&redirect_uri, refresh_token.expose_secret())
                    .await;
                match result {
                    Err(GoogleError::Unavailable(reason)) if attempt < REFRESH_ATTEMPTS => {
                        tracing::warn!(%user, attempt, %reason, "refresh failed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    other => break other,
                }
            }
        };
        tokio::time::timeout(REFRESH_BUDGET, retries)
            .await
            .unwrap_or_else(|_| {
                Err(GoogleError::Unavailable(format!(
                    "timeout: no answer within {} s",
                    REFRESH_BUDGET.as_secs()
                )))
            })
    }

    /// Store what Google answered and audit it; returns the scopes Google
    /// named, if it named any.
    async fn store_refresh(
        &self,
        mut tx: Tx,
        provider: &Provider,
        row: &TokenRow,
        refresh_token: &SecretString,
        tokens: &Tokens,
    ) -> Result<Option<ScopeSet>, TokenError> {
        let user = row.user_id;
        let access = tokens.access_token.expose_secret();
        let sealed = self.cipher.seal(user, Field::AccessToken, access);
        let new_scopes = tokens.scopes.as_ref().map(ScopeSet::to_json);
        gmail_token::record_refresh(
            &mut *tx,
            user,
            &sealed,
            tokens.expires_at,
            new_scopes.clone(),
        )
        .await?;
        // A refresh token still in plaintext (the old service's) or under an
        // old key is sealed under the active key now.
        if row
            .refresh_token
            .as_deref()
            .is_some_and(|s| self.cipher.needs_rewrite(s))
        {
            let sealed = self
                .cipher
                .seal(user, Field::RefreshToken, refresh_token.expose_secret());
            gmail_token::set_refresh_token(&mut *tx, user, &sealed).await?;
        }
        let event = NewEvent {
            scopes_before: row.scopes.clone(),
            scopes_after: new_scopes,
            ..NewEvent::new(user, provider.name, EventKind::Refreshed)
        };
        passport_event::insert(&mut *tx, &event).await?;
        tx.commit().await?;
        self.refresh_cooldowns.clear(user);
        count_refresh("refreshed");
        Ok(tokens.scopes.clone())
    }

    /// Google will not refresh this connection any more: mark the row
    /// `reauth_required`, audit it and announce it, in one transaction.
    /// Returns the error the caller answers with.
    async fn record_broken(
        &self,
        mut tx: Tx,
        provider: &Provider,
        row: &TokenRow,
        cause: ReauthCause,
    ) -> Result<TokenError, sqlx::Error> {
        let user = row.user_id;
        gmail_token::mark_reauth_required(&mut *tx, user, &cause).await?;
        let detail = match &cause {
            ReauthCause::InvalidGrant { description } => Some(description.as_str()),
            _ => None,
        };
        let event = NewEvent {
            error_code: Some(cause.code()),
            detail,
            ..NewEvent::new(user, provider.name, EventKind::ReauthRequired)
        };
        passport_event::insert(&mut *tx, &event).await?;
        let why = cause.to_last_error();
        let facts = webhooks::Facts {
            email: row.email.as_deref(),
            cause: Some(&why),
            ..Default::default()
        };
        let kind = webhooks::Kind::ReauthRequired;
        webhooks::enqueue(&mut tx, self, provider, kind, user, facts).await?;
        tx.commit().await?;
        count_refresh("reauth_required");
        tracing::info!(%user, cause = cause.code(), "refresh refused; connection needs 재인증");
        Ok(TokenError::ReauthRequired(cause))
    }

    /// Google unavailable, or refusing our client: nothing in the row
    /// changes; callers are answered from this failure for a while.
    async fn record_unavailable(
        &self,
        provider: &Provider,
        user: Uuid,
        source: GoogleError,
    ) -> Result<TokenError, sqlx::Error> {
        let detail = source.to_string();
        let event = NewEvent {
            error_code: Some("refresh_failed"),
            detail: Some(&detail),
            ..NewEvent::new(user, provider.name, EventKind::RefreshFailed)
        };
        passport_event::insert(&self.db, &event).await?;
        let cooldown = self.settings.refresh_cooldown;
        if !cooldown.is_zero() {
            self.refresh_cooldowns.set(user, cooldown, source.clone());
        }
        count_refresh("unavailable");
        tracing::warn!(%user, reason = %detail, "refresh failed after retries");
        Ok(TokenError::Unavailable {
            source,
            retry_after: cooldown.max(Duration::from_secs(1)),
        })
    }
}

fn from_cache(c: Cached, requested: &ScopeSet) -> Result<IssuedToken, TokenError> {
    let missing = requested.missing_from(&c.scopes);
    if !missing.is_empty() {
        return Err(TokenError::ScopeMissing(missing));
    }
    Ok(IssuedToken {
        access_token: c.access_token,
        expires_at: Some(c.expires_at),
        scopes: (*c.scopes).clone(),
        email: c.email,
    })
}

fn issued_after_refresh(
    tokens: Tokens,
    granted: ScopeSet,
    requested: &ScopeSet,
    row: &TokenRow,
) -> Result<IssuedToken, TokenError> {
    let missing = requested.missing_from(&granted);
    if !missing.is_empty() {
        return Err(TokenError::ScopeMissing(missing));
    }
    Ok(IssuedToken {
        access_token: tokens.access_token,
        expires_at: tokens.expires_at,
        scopes: granted,
        email: row.email.clone(),
    })
}

/// Wait before attempt `attempt + 1`: doubled each time, with jitter.
fn backoff(attempt: u32) -> Duration {
    let base = REFRESH_BACKOFF * 2u32.pow(attempt - 1);
    let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 2);
    base + Duration::from_millis(jitter)
}

fn count_refresh(outcome: &'static str) {
    metrics::counter!("passport_refresh_total", "outcome" => outcome).increment(1);
}
