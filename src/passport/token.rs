//! Access tokens for skills: scope checks, refresh when close to expiry,
//! single flight per user (inside the process and across processes), and
//! precise failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::GoogleError;
use crate::passport::cache::Cached;
use crate::passport::provider::Provider;
use crate::passport::scopes::ScopeSet;
use crate::passport::webhooks;
use crate::state::AppState;
use crate::store::gmail_token::{self, TokenRow};
use crate::store::passport_event::{self, EventKind, NewEvent};

/// How many times a refresh is tried when Google is unavailable.
pub const REFRESH_ATTEMPTS: u32 = 3;
/// First backoff between attempts (doubled each time, with jitter).
pub const REFRESH_BACKOFF: Duration = Duration::from_millis(200);
/// Time for all attempts of one refresh together (below the 30 s request
/// timeout).
pub const REFRESH_BUDGET: Duration = Duration::from_secs(20);

/// A token handed to a skill.
pub struct IssuedToken {
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
pub enum TokenError {
    #[error("no connection for this user")]
    NotConnected,
    #[error("the connection lacks scopes: {0}")]
    ScopeMissing(ScopeSet),
    /// Google refused the refresh token (or there is none): 재인증 needed.
    #[error("re-authorization required: {0}")]
    ReauthRequired(String),
    /// Google unavailable after retries, or in the cool-down after a failure.
    #[error("google unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl TokenError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::ScopeMissing(_) => "scope_missing",
            Self::ReauthRequired(_) => "reauth_required",
            Self::Unavailable { .. } => "upstream_unavailable",
            Self::Database(_) | Self::Crypto(_) => "internal",
        }
    }
}

/// One async mutex per user, dropped when nobody holds or waits for it.
#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub fn get(&self, key: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key, Arc::downgrade(&lock));
        lock
    }
}

/// Recent refresh failures (Google unavailable), per user, in this process.
#[derive(Default)]
pub struct Cooldowns {
    map: Mutex<HashMap<Uuid, (Instant, String)>>,
}

impl Cooldowns {
    fn get(&self, user: Uuid) -> Option<(Duration, String)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&user) {
            Some((until, reason)) if *until > Instant::now() => {
                Some((*until - Instant::now(), reason.clone()))
            }
            Some(_) => {
                map.remove(&user);
                None
            }
            None => None,
        }
    }

    fn set(&self, user: Uuid, for_: Duration, reason: String) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            let now = Instant::now();
            map.retain(|_, (until, _)| *until > now);
        }
        map.insert(user, (Instant::now() + for_, reason));
    }

    fn clear(&self, user: Uuid) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&user);
    }
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
    if row.status != "active" {
        return Err(TokenError::ReauthRequired(
            row.last_error.clone().unwrap_or_else(|| row.status.clone()),
        ));
    }
    Ok(granted)
}

fn issue(app: &AppState, row: &TokenRow, granted: ScopeSet) -> Result<IssuedToken, TokenError> {
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

/// A token for `user` that covers `requested` and stays valid for at least the
/// refresh margin, refreshing it first when needed.
pub async fn token_for(
    app: &AppState,
    provider: &Provider,
    user: Uuid,
    requested: &ScopeSet,
) -> Result<IssuedToken, TokenError> {
    if let Some(c) = app.token_cache.get(user, app.settings.refresh_margin) {
        let missing = requested.missing_from(&c.scopes);
        if !missing.is_empty() {
            return Err(TokenError::ScopeMissing(missing));
        }
        return Ok(IssuedToken {
            access_token: c.access_token,
            expires_at: Some(c.expires_at),
            scopes: (*c.scopes).clone(),
            email: c.email,
        });
    }
    let generation = app.token_cache.generation();
    let row = gmail_token::find(&app.db, user)
        .await?
        .ok_or(TokenError::NotConnected)?;
    let granted = check_usable(&row, requested)?;
    if is_fresh(&row, app.settings.refresh_margin) {
        let issued = issue(app, &row, granted)?;
        if let Some(expires_at) = issued.expires_at {
            app.token_cache.insert_if_unchanged(
                user,
                generation,
                Cached {
                    read_at: std::time::Instant::now(),
                    access_token: issued.access_token.clone(),
                    expires_at,
                    scopes: app.token_cache.intern(issued.scopes.clone()),
                    email: issued.email.clone(),
                },
            );
        }
        return Ok(issued);
    }
    refresh_single_flight(app, provider, user, requested, false).await
}

/// Refresh the user's token unless another caller just did; `force` refreshes
/// even a fresh token (the doctor's live check).
pub async fn refresh_single_flight(
    app: &AppState,
    provider: &Provider,
    user: Uuid,
    requested: &ScopeSet,
    force: bool,
) -> Result<IssuedToken, TokenError> {
    // Inside this process: one caller per user goes on, the others wait here
    // and then find the token it stored.
    let lock = app.refresh_locks.get(user);
    let _guard = lock.lock().await;

    if !force {
        if let Some((left, reason)) = app.refresh_cooldowns.get(user) {
            return Err(TokenError::Unavailable {
                reason,
                retry_after: left,
            });
        }
    }

    // Across processes: the row lock. Whoever holds it refreshes; the others
    // read the row after it and find the fresh token.
    let mut tx = app.db.begin().await?;
    let row = gmail_token::find_for_update(&mut *tx, user)
        .await?
        .ok_or(TokenError::NotConnected)?;
    let granted = check_usable(&row, requested)?;
    if !force && is_fresh(&row, app.settings.refresh_margin) {
        tx.commit().await?;
        return issue(app, &row, granted);
    }
    let refresh_token =
        app.cipher
            .open_opt(user, Field::RefreshToken, row.refresh_token.as_deref())?;
    let Some(refresh_token) = refresh_token else {
        let why = "no_refresh_token: no refresh token is stored; press 재인증";
        mark_broken(app, &mut tx, provider, &row, "no_refresh_token", None, why).await?;
        tx.commit().await?;
        return Err(TokenError::ReauthRequired(why.into()));
    };

    let redirect_uri = app.settings.redirect_uri(provider.name);
    let mut attempt = 0;
    let retries = async {
        loop {
            attempt += 1;
            match app
                .google
                .refresh(&redirect_uri, refresh_token.expose_secret())
                .await
            {
                Err(GoogleError::Unavailable(reason)) if attempt < REFRESH_ATTEMPTS => {
                    let base = REFRESH_BACKOFF * 2u32.pow(attempt - 1);
                    let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 2);
                    tracing::warn!(%user, attempt, %reason, "refresh failed; retrying");
                    tokio::time::sleep(base + Duration::from_millis(jitter)).await;
                }
                other => break other,
            }
        }
    };
    // All tries together stay well inside the request timeout, so the caller
    // always gets the JSON answer and the cool-down is recorded.
    let result = tokio::time::timeout(REFRESH_BUDGET, retries)
        .await
        .unwrap_or_else(|_| {
            Err(GoogleError::Unavailable(format!(
                "timeout: no answer within {} s",
                REFRESH_BUDGET.as_secs()
            )))
        });

    match result {
        Ok(tokens) => {
            let new_scopes = tokens.scopes.clone();
            gmail_token::record_refresh(
                &mut *tx,
                user,
                &app.cipher.seal(
                    user,
                    Field::AccessToken,
                    tokens.access_token.expose_secret(),
                ),
                tokens.expires_at,
                new_scopes.as_ref().map(ScopeSet::to_json),
            )
            .await?;
            // A refresh token still in plaintext (the old service's) or under
            // an old key is sealed under the active key now.
            if let Some(stored) = row.refresh_token.as_deref() {
                if app.cipher.needs_rewrite(stored) {
                    let sealed =
                        app.cipher
                            .seal(user, Field::RefreshToken, refresh_token.expose_secret());
                    gmail_token::set_refresh_token(&mut *tx, user, &sealed).await?;
                }
            }
            passport_event::insert(
                &mut *tx,
                &NewEvent {
                    scopes_before: row.scopes.clone(),
                    scopes_after: new_scopes.as_ref().map(ScopeSet::to_json),
                    ..NewEvent::new(user, provider.name, EventKind::Refreshed)
                },
            )
            .await?;
            tx.commit().await?;
            app.refresh_cooldowns.clear(user);
            count_refresh("refreshed");
            let granted = new_scopes.unwrap_or(granted);
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
        Err(e) if e.is_invalid_grant() => {
            let desc = match &e {
                GoogleError::Rejected {
                    description: Some(d),
                    ..
                } => d.clone(),
                _ => String::new(),
            };
            let why = format!("invalid_grant: {desc}");
            mark_broken(
                app,
                &mut tx,
                provider,
                &row,
                "invalid_grant",
                Some(&desc),
                &why,
            )
            .await?;
            tx.commit().await?;
            tracing::info!(%user, "refresh token refused (invalid_grant); connection needs 재인증");
            Err(TokenError::ReauthRequired(why))
        }
        Err(e) => {
            // Google unavailable, or refusing our client: nothing in the row
            // changes; callers are answered from this failure for a while.
            tx.rollback().await?;
            let reason = match &e {
                GoogleError::Rejected { code, .. } => format!("google refused the refresh: {code}"),
                GoogleError::Unavailable(r) => format!("google unavailable: {r}"),
                GoogleError::Protocol(r) => format!("unexpected answer from google: {r}"),
            };
            let event = NewEvent {
                error_code: Some("refresh_failed"),
                detail: Some(&reason),
                ..NewEvent::new(user, provider.name, EventKind::RefreshFailed)
            };
            passport_event::insert(&app.db, &event).await?;
            let cooldown = app.settings.refresh_cooldown;
            if !cooldown.is_zero() {
                app.refresh_cooldowns.set(user, cooldown, reason.clone());
            }
            count_refresh("unavailable");
            tracing::warn!(%user, %reason, "refresh failed after retries");
            Err(TokenError::Unavailable {
                reason,
                retry_after: cooldown.max(Duration::from_secs(1)),
            })
        }
    }
}

/// Google will not refresh this connection any more: mark the row
/// `reauth_required`, audit it and announce it, in the caller's transaction.
async fn mark_broken(
    app: &AppState,
    tx: &mut sqlx::PgConnection,
    provider: &Provider,
    row: &TokenRow,
    code: &str,
    detail: Option<&str>,
    why: &str,
) -> Result<(), sqlx::Error> {
    let user = row.user_id;
    gmail_token::mark_reauth_required(&mut *tx, user, why).await?;
    passport_event::insert(
        &mut *tx,
        &NewEvent {
            error_code: Some(code),
            detail,
            ..NewEvent::new(user, provider.name, EventKind::ReauthRequired)
        },
    )
    .await?;
    let facts = webhooks::Facts {
        email: row.email.as_deref(),
        cause: Some(why.trim_end_matches(": ")),
        ..Default::default()
    };
    webhooks::enqueue(
        tx,
        app,
        provider.name,
        webhooks::Kind::ReauthRequired,
        user,
        facts,
    )
    .await?;
    count_refresh("reauth_required");
    Ok(())
}

fn count_refresh(outcome: &'static str) {
    metrics::counter!("passport_refresh_total", "outcome" => outcome).increment(1);
}
