//! Access tokens for skills: scope checks, refresh when close to expiry,
//! single flight per user (inside the process and across processes), and
//! precise failures.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::{GoogleError, Refusal, Tokens};
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
/// timeout, with the claim's margin).
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
    /// Google unavailable after retries, or calls paused by the breaker.
    #[error("google unavailable: {source}")]
    Unavailable {
        source: GoogleError,
        retry_after: Duration,
    },
    /// Google refuses our OAuth client (`invalid_client`, …): ours to fix.
    #[error("google refuses our client: {source}")]
    Misconfigured { source: GoogleError },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// Why Google gave no token when the user has nothing to do: the `cause`
/// of `upstream_unavailable` and `upstream_misconfigured`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum UpstreamCause {
    /// Google refuses a scope we ask for (`invalid_scope`): ours to fix.
    InvalidScope,
    /// Google refuses our OAuth client (`invalid_client`,
    /// `unauthorized_client`, `deleted_client`): ours to fix.
    ClientMisconfigured,
    /// Google limits our calls (429, `rateLimitExceeded`).
    RateLimited,
    /// Google is down, slow, or answered something else.
    GoogleUnavailable,
}

impl UpstreamCause {
    pub(crate) fn of(e: &GoogleError) -> Self {
        match (e, e.refusal()) {
            (GoogleError::RateLimited { .. }, _) => Self::RateLimited,
            (_, Some(Refusal::InvalidScope)) => Self::InvalidScope,
            (_, Some(Refusal::ClientRefused)) => Self::ClientMisconfigured,
            _ => Self::GoogleUnavailable,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        self.into()
    }
}

impl TokenError {
    /// The cause code answered next to the error code: the [`ReauthCause`]
    /// of a connection that needs 재인증, the [`UpstreamCause`] of a refusal
    /// or failure of Google's that the user cannot fix.
    pub(crate) fn cause(&self) -> Option<&'static str> {
        match self {
            Self::ReauthRequired(c) => Some(c.code()),
            Self::Unavailable { source, .. } | Self::Misconfigured { source } => {
                Some(UpstreamCause::of(source).code())
            }
            _ => None,
        }
    }
}

/// The [`ReauthCause`] of a refusal the user (or their admin) must act on;
/// `None` for the refusals that are ours or passing.
fn reauth_cause(e: &GoogleError) -> Option<ReauthCause> {
    let description = e.description().unwrap_or_default().to_string();
    Some(match e.refusal()? {
        Refusal::InvalidGrant => ReauthCause::InvalidGrant { description },
        Refusal::InvalidRapt => ReauthCause::InvalidRapt { description },
        Refusal::AdminPolicyEnforced => ReauthCause::AdminPolicyEnforced { description },
        Refusal::OrgInternal => ReauthCause::OrgInternal { description },
        Refusal::AccessDenied => ReauthCause::AccessDenied { description },
        Refusal::InvalidScope | Refusal::ClientRefused | Refusal::Other => return None,
    })
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

/// The short transaction a refresh stores its result in.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// How long a follower waits between two looks at a refresh another
/// instance is running.
const CLAIM_POLL: Duration = Duration::from_millis(50);
/// A claim outlives the refresh budget by this much (a crashed instance's
/// claim lapses; a live one has answered by then).
const CLAIM_MARGIN: Duration = Duration::from_secs(5);
/// How often a refused OAuth client is logged as an error.
const MISCONFIGURED_LOG_EVERY: Duration = Duration::from_secs(60);

/// Where a refresh stands after trying to claim it.
enum Claim {
    /// A fresh token is there (someone else refreshed it).
    Done(IssuedToken),
    /// This call holds the claim: it asks Google.
    Ours(Box<TokenRow>, ScopeSet),
    /// Another instance is refreshing this user right now.
    Busy,
}

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
        // The database path (and its refresh, with Google's calls) in a heap
        // allocation of its own: otherwise every cached answer's future is as
        // large as theirs, and is copied around as such.
        Box::pin(self.token_from_db(provider, user, requested)).await
    }

    /// [`Self::token_for`] after a cache miss.
    async fn token_from_db(
        &self,
        provider: &Provider,
        user: Uuid,
        requested: &ScopeSet,
    ) -> Result<IssuedToken, TokenError> {
        let margin = self.settings.refresh_margin;
        // Taken before the read joins a batch: the statement starts after it.
        let generation = self.token_cache.generation();
        let row = self
            .token_reads
            .find(user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        // Scopes no MAC vouches for are checked with Google first: only a
        // verified row is answered from, or cached. The paths that call
        // Google are boxed: this future stays small on the common path.
        let row = match self.vouched_for(&row) {
            true => row,
            false => Box::pin(self.verified(provider, row)).await?,
        };
        let granted = check_usable(&row, requested)?;
        if !is_fresh(&row, margin) {
            return Box::pin(self.refresh(provider, user, requested, false)).await;
        }
        let issued = issue(self, &row, granted)?;
        self.remember(user, generation, &issued);
        Ok(issued)
    }

    /// Keep a verified row read since `generation` (by the status API) in
    /// the token cache when the token path would have: `active` and fresh
    /// beyond the refresh margin. The caller has verified its scopes.
    pub(crate) fn remember_row(&self, generation: u64, row: &TokenRow) {
        if row.status != ConnectionStatus::Active || !is_fresh(row, self.settings.refresh_margin) {
            return;
        }
        let granted = ScopeSet::from_json(row.scopes.as_ref());
        if let Ok(issued) = issue(self, row, granted) {
            self.remember(row.user_id, generation, &issued);
        }
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
    /// Single flight without holding the database while Google answers:
    /// inside this process one caller per user goes on and the others wait on
    /// its lock; across processes a claim on the row (one short statement)
    /// names the refresher, and the others wait for its result.
    pub(crate) async fn refresh(
        &self,
        provider: &Provider,
        user: Uuid,
        requested: &ScopeSet,
        force: bool,
    ) -> Result<IssuedToken, TokenError> {
        let lock = self.refresh_locks.get(user);
        let _guard = lock.lock().await;
        let deadline = tokio::time::Instant::now() + REFRESH_BUDGET + CLAIM_MARGIN;
        let mut force = force;
        loop {
            match self.claim(user, requested, force).await? {
                Claim::Done(issued) => return Ok(issued),
                Claim::Ours(row, granted) => {
                    return self
                        .refresh_claimed(provider, &row, granted, requested)
                        .await
                }
                Claim::Busy if tokio::time::Instant::now() >= deadline => {
                    return Err(TokenError::Unavailable {
                        source: GoogleError::Unavailable(
                            "another instance's refresh of this user did not finish".into(),
                        ),
                        retry_after: Duration::from_secs(1),
                    });
                }
                // Another instance's fresh result serves a forced check too.
                Claim::Busy => force = false,
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }

    /// Find the refresh done (one plain read: what every follower does), or
    /// claim it, or find someone else at it.
    async fn claim(
        &self,
        user: Uuid,
        requested: &ScopeSet,
        force: bool,
    ) -> Result<Claim, TokenError> {
        let margin = self.settings.refresh_margin;
        let row = gmail_token::find(&self.db, user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let granted = check_usable(&row, requested)?;
        if !force && is_fresh(&row, margin) {
            return Ok(Claim::Done(issue(self, &row, granted)?));
        }
        let secs = (REFRESH_BUDGET + CLAIM_MARGIN).as_secs_f64();
        let Some(row) = gmail_token::claim_refresh(&self.db, user, secs).await? else {
            return Ok(Claim::Busy);
        };
        // Checked again under the claim: the row may have changed since.
        let usable = check_usable(&row, requested);
        if usable.is_err() || (!force && is_fresh(&row, margin)) {
            gmail_token::release_refresh(&self.db, user).await?;
            return Ok(Claim::Done(issue(self, &row, usable?)?));
        }
        Ok(Claim::Ours(Box::new(row), usable?))
    }

    /// Ask Google with the claim held (and no database connection), then
    /// record the answer.
    async fn refresh_claimed(
        &self,
        provider: &Provider,
        row: &TokenRow,
        granted: ScopeSet,
        requested: &ScopeSet,
    ) -> Result<IssuedToken, TokenError> {
        let user = row.user_id;
        let stored = row.refresh_token.as_deref();
        let refresh_token = match self.cipher.open_opt(user, Field::RefreshToken, stored) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(self
                    .record_broken(provider, row, ReauthCause::NoRefreshToken)
                    .await?)
            }
            Err(e) => {
                gmail_token::release_refresh(&self.db, user).await?;
                return Err(e.into());
            }
        };
        let permit = match self.google_breaker.admit() {
            Ok(p) => p,
            Err(wait) => return Err(self.turned_away(user, wait).await?),
        };
        let result = self.call_refresh(provider, user, &refresh_token).await;
        match &result {
            Err(e) if e.is_outage() => permit.failure(&self.google_breaker),
            _ => permit.success(),
        }
        match result {
            Ok(tokens) => {
                if !self
                    .store_refresh(provider, row, &refresh_token, &tokens)
                    .await?
                {
                    return self.after_lost_claim(user, requested).await;
                }
                let granted = tokens.scopes.clone().unwrap_or(granted);
                issued_after_refresh(tokens, granted, requested, row)
            }
            Err(e) => match (reauth_cause(&e), UpstreamCause::of(&e)) {
                (Some(cause), _) => Err(self.record_broken(provider, row, cause).await?),
                (None, UpstreamCause::InvalidScope | UpstreamCause::ClientMisconfigured) => {
                    Err(self.record_misconfigured(provider, user, e).await?)
                }
                (None, _) => Err(self.record_unavailable(provider, user, e).await?),
            },
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

    /// Store what Google answered and audit it, in one short transaction;
    /// `false` when the claim was taken away meanwhile (a new consent or a
    /// disconnect replaced the grant) and nothing was stored.
    async fn store_refresh(
        &self,
        provider: &Provider,
        row: &TokenRow,
        refresh_token: &SecretString,
        tokens: &Tokens,
    ) -> Result<bool, TokenError> {
        let user = row.user_id;
        let access = tokens.access_token.expose_secret();
        let sealed = self.cipher.seal(user, Field::AccessToken, access);
        let new_scopes = tokens.scopes.as_ref().map(ScopeSet::to_json);
        // Google's list, with the MAC that vouches for it.
        let vouched = tokens.scopes.as_ref().map(|s| {
            let sub = row.google_sub.as_deref();
            (
                s.to_json(),
                self.scopes_mac(user, sub, Some(refresh_token), s),
            )
        });
        let mut tx = self.db.begin().await?;
        let expires = tokens.expires_at;
        if !gmail_token::record_refresh(&mut *tx, user, &sealed, expires, vouched).await? {
            return Ok(false);
        }
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
            self.write_refresh_ids(&mut tx, user, Some(&sealed)).await?;
        } else {
            // Rows stored before RISC (or by another writer) get their
            // refresh token's identifiers on their next refresh.
            let stored = row.refresh_token.as_deref();
            self.write_refresh_ids(&mut tx, user, stored).await?;
        }
        let event = NewEvent {
            scopes_before: row.scopes.clone(),
            scopes_after: new_scopes,
            ..NewEvent::new(user, provider.name, EventKind::Refreshed)
        };
        passport_event::insert(&mut *tx, &event).await?;
        self.commit_for(user, tx).await?;
        count_refresh("refreshed");
        Ok(true)
    }

    /// Commit a write to `user`'s connection, dropping this instance's cached
    /// copy on both sides of the commit: the instance never serves what it
    /// has just replaced, whenever its own notification arrives.
    pub(crate) async fn commit_for(&self, user: Uuid, tx: Tx) -> Result<(), sqlx::Error> {
        self.token_cache.invalidate(user);
        tx.commit().await?;
        self.token_cache.invalidate(user);
        Ok(())
    }

    /// The grant changed under a refresh: answer from what is stored now.
    async fn after_lost_claim(
        &self,
        user: Uuid,
        requested: &ScopeSet,
    ) -> Result<IssuedToken, TokenError> {
        let row = gmail_token::find(&self.db, user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        let granted = check_usable(&row, requested)?;
        if is_fresh(&row, self.settings.refresh_margin) {
            return issue(self, &row, granted);
        }
        Err(changed_meanwhile())
    }

    /// Google will not refresh this connection any more: mark the row
    /// `reauth_required`, audit it and announce it, in one transaction.
    /// Returns the error the caller answers with.
    async fn record_broken(
        &self,
        provider: &Provider,
        row: &TokenRow,
        cause: ReauthCause,
    ) -> Result<TokenError, sqlx::Error> {
        let user = row.user_id;
        let mut tx = self.db.begin().await?;
        if !gmail_token::mark_reauth_required(&mut *tx, user, &cause).await? {
            // The grant was replaced meanwhile: the refusal was about the old one.
            return Ok(changed_meanwhile());
        }
        let detail = cause.detail();
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
            cause_code: Some(cause.code()),
            ..Default::default()
        };
        let kind = webhooks::Kind::ReauthRequired;
        webhooks::enqueue(&mut tx, self, provider, kind, user, facts).await?;
        self.commit_for(user, tx).await?;
        count_refresh("reauth_required");
        count_refusal(cause.code());
        tracing::info!(%user, cause = cause.code(), "refresh refused; connection needs 재인증");
        Ok(TokenError::ReauthRequired(cause))
    }

    /// Google unavailable: nothing in the row changes; the claim is given
    /// back and the failure audited.
    async fn record_unavailable(
        &self,
        provider: &Provider,
        user: Uuid,
        source: GoogleError,
    ) -> Result<TokenError, sqlx::Error> {
        self.record_refresh_failure(provider, user, &source).await?;
        count_refresh("unavailable");
        // Google's own `Retry-After` is honoured; otherwise the breaker's pause.
        let retry_after = source
            .retry_after()
            .unwrap_or(self.settings.google_calls.breaker_open);
        tracing::warn!(%user, reason = %source, "refresh failed after retries");
        Ok(TokenError::Unavailable {
            source,
            retry_after,
        })
    }

    /// Google refuses our OAuth client: a configuration problem of ours, said
    /// loudly (an error log line a minute, a metric), never retried as an
    /// outage.
    async fn record_misconfigured(
        &self,
        provider: &Provider,
        user: Uuid,
        source: GoogleError,
    ) -> Result<TokenError, sqlx::Error> {
        self.record_refresh_failure(provider, user, &source).await?;
        count_refresh("misconfigured");
        let cause = UpstreamCause::of(&source);
        if cause == UpstreamCause::ClientMisconfigured {
            metrics::counter!("passport_google_client_refused_total").increment(1);
        }
        if self.misconfigured_log.ready(MISCONFIGURED_LOG_EVERY) {
            match cause {
                UpstreamCause::InvalidScope => {
                    tracing::error!(error = %source, "Google refuses a scope this service asks for: check GMAIL_PASSPORT_SCOPES")
                }
                _ => {
                    tracing::error!(error = %source, "Google refuses our OAuth client: check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (auth-server doctor --user <id> says more)")
                }
            }
        }
        Ok(TokenError::Misconfigured { source })
    }

    /// Give the claim back and audit a refresh that got no answer to store.
    async fn record_refresh_failure(
        &self,
        provider: &Provider,
        user: Uuid,
        source: &GoogleError,
    ) -> Result<(), sqlx::Error> {
        gmail_token::release_refresh(&self.db, user).await?;
        let detail = match source.description() {
            Some(d) => format!("{source}: {d}"),
            None => source.to_string(),
        };
        let cause = UpstreamCause::of(source).code();
        count_refusal(cause);
        let event = NewEvent {
            error_code: Some(cause),
            detail: Some(&detail),
            ..NewEvent::new(user, provider.name, EventKind::RefreshFailed)
        };
        passport_event::insert(&self.db, &event).await
    }

    /// The breaker is open: no call to Google; the claim is given back.
    async fn turned_away(&self, user: Uuid, wait: Duration) -> Result<TokenError, sqlx::Error> {
        gmail_token::release_refresh(&self.db, user).await?;
        count_refresh("breaker_open");
        Ok(TokenError::Unavailable {
            source: GoogleError::Unavailable(
                "calls to Google are paused after repeated failures".into(),
            ),
            retry_after: wait.max(Duration::from_secs(1)),
        })
    }
}

/// A consent or a disconnect replaced the grant while it was refreshed:
/// the caller asks again in a moment.
fn changed_meanwhile() -> TokenError {
    TokenError::Unavailable {
        source: GoogleError::Unavailable("the connection changed during the refresh".into()),
        retry_after: Duration::from_secs(1),
    }
}

fn from_cache(c: Arc<Cached>, requested: &ScopeSet) -> Result<IssuedToken, TokenError> {
    let missing = requested.missing_from(&c.scopes);
    if !missing.is_empty() {
        return Err(TokenError::ScopeMissing(missing));
    }
    Ok(IssuedToken {
        access_token: c.access_token.clone(),
        expires_at: Some(c.expires_at),
        scopes: (*c.scopes).clone(),
        email: c.email.clone(),
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

/// A refresh Google refused or failed, by cause (a bounded set: the
/// [`ReauthCause`] and [`UpstreamCause`] codes).
fn count_refusal(cause: &'static str) {
    metrics::counter!("passport_refresh_refusals_total", "cause" => cause).increment(1);
}
