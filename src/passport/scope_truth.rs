//! The stored scopes tell the truth: a list the service wrote carries a MAC
//! (`gmail_token.scopes_mac`, see `crypto`); a list without one, or whose MAC
//! does not match (an operator's `UPDATE`, the old service), is checked with
//! Google before anyone is told anything from it, and corrected.
//!
//! Verification happens when a row is read from the database (the token
//! API's database path, the status API and item page, the doctor); the token
//! cache only ever holds entries from verified rows, so its path is
//! unchanged. A row with a valid MAC costs one HMAC, no call to Google.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{Field, MacCheck, ScopesOf};
use crate::google::GoogleError;
use crate::passport::provider::Provider;
use crate::passport::token::TokenError;
use crate::passport::{webhooks, Passport};
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{self, ConnectionStatus, TokenRow};
use crate::store::passport_event::{self, EventKind, NewEvent};

/// A token that expires sooner than this is refreshed rather than shown to
/// tokeninfo.
const TOKENINFO_MARGIN: Duration = Duration::from_secs(10);

/// What Google says the grant holds, and how it was asked.
enum Truth {
    /// tokeninfo on the stored access token listed these scopes.
    Listed(ScopeSet),
    /// A forced refresh stored Google's answer (and its MAC): this is the row now.
    Refreshed(Box<TokenRow>),
}

impl Passport {
    /// The MAC vouching for `scopes` of this user's grant (`None` without
    /// any key in `TOKEN_ENCRYPTION_KEYS`).
    pub(crate) fn scopes_mac(
        &self,
        user: uuid::Uuid,
        google_sub: Option<&str>,
        refresh_token: Option<&SecretString>,
        scopes: &ScopeSet,
    ) -> Option<String> {
        let of = ScopesOf {
            user,
            google_sub,
            refresh_token: refresh_token.map(|r| r.expose_secret()),
        };
        let list: Vec<&str> = scopes.iter().collect();
        self.cipher.scopes_mac(of, &list)
    }

    /// Does the row's MAC vouch for its scopes? (A refresh token that does
    /// not open vouches for nothing.)
    pub(crate) fn scopes_check(&self, row: &TokenRow) -> MacCheck {
        let stored = row.refresh_token.as_deref();
        let Ok(refresh) = self
            .cipher
            .open_opt(row.user_id, Field::RefreshToken, stored)
        else {
            return MacCheck::Mismatch;
        };
        let of = ScopesOf {
            user: row.user_id,
            google_sub: row.google_sub.as_deref(),
            refresh_token: refresh.as_ref().map(|r| r.expose_secret()),
        };
        let scopes = ScopeSet::from_json(row.scopes.as_ref());
        let list: Vec<&str> = scopes.iter().collect();
        self.cipher
            .check_scopes_mac(of, &list, row.scopes_mac.as_deref())
    }

    /// Can the row's scopes be answered from as they are: its MAC vouches
    /// for them, or the connection needs 재인증 anyway (see
    /// [`verified`](Self::verified))?
    pub(crate) fn vouched_for(&self, row: &TokenRow) -> bool {
        row.status != ConnectionStatus::Active || self.scopes_check(row) == MacCheck::Valid
    }

    /// The row with scopes that tell the truth: as it is when its MAC vouches
    /// for them; otherwise Google is asked first and the row corrected (and
    /// the correction recorded). A connection that needs 재인증 is left as it
    /// is: Google answers nothing for its grant, and 재인증 replaces the list.
    pub(crate) async fn verified(
        &self,
        provider: &Provider,
        row: TokenRow,
    ) -> Result<TokenRow, TokenError> {
        if self.vouched_for(&row) {
            return Ok(row);
        }
        match self.ask_google(provider, &row).await? {
            Truth::Listed(truth) => self.correct(provider, row, truth).await,
            Truth::Refreshed(now) => {
                let truth = ScopeSet::from_json(now.scopes.as_ref());
                if self.scopes_check(&now) != MacCheck::Valid {
                    // Google's refresh answer named no scopes: ask tokeninfo.
                    return match self.tokeninfo_scopes(&now).await? {
                        Some(truth) => self.correct(provider, *now, truth).await,
                        None => Err(unverifiable()),
                    };
                }
                if truth != ScopeSet::from_json(row.scopes.as_ref()) {
                    self.record_correction(provider, &row, &truth, None).await?;
                }
                Ok(*now)
            }
        }
    }

    /// tokeninfo on the stored access token while it is valid; otherwise (or
    /// when Google no longer knows it) a forced refresh through the single
    /// flight, which stores what Google grants.
    async fn ask_google(&self, provider: &Provider, row: &TokenRow) -> Result<Truth, TokenError> {
        if let Some(listed) = self.tokeninfo_scopes(row).await? {
            return Ok(Truth::Listed(listed));
        }
        let user = row.user_id;
        self.refresh(provider, user, &ScopeSet::new(), true).await?;
        let now = gmail_token::find(&self.db, user)
            .await?
            .ok_or(TokenError::NotConnected)?;
        Ok(Truth::Refreshed(Box::new(now)))
    }

    /// The scopes tokeninfo lists for the row's access token; `None` when
    /// there is no valid one to ask about. Google unavailable (or calls
    /// paused by the breaker): `upstream_unavailable`, never the stored list.
    async fn tokeninfo_scopes(&self, row: &TokenRow) -> Result<Option<ScopeSet>, TokenError> {
        let margin = chrono::Duration::from_std(TOKENINFO_MARGIN).unwrap_or_default();
        let valid = row
            .expires_at
            .is_some_and(|e| e > chrono::Utc::now() + margin);
        let stored = row.access_token.as_deref().filter(|_| valid);
        let Some(access) = self
            .cipher
            .open_opt(row.user_id, Field::AccessToken, stored)?
        else {
            return Ok(None);
        };
        let permit = match self.google_breaker.admit() {
            Ok(p) => p,
            Err(wait) => {
                let why = "calls to Google are paused after repeated failures";
                return Err(unavailable(GoogleError::Unavailable(why.into()), wait));
            }
        };
        let answer = self.google.tokeninfo(access.expose_secret()).await;
        match &answer {
            Err(e) if e.is_outage() => permit.failure(&self.google_breaker),
            _ => permit.success(),
        }
        match answer {
            Ok(info) => Ok(Some(ScopeSet::from_google(
                info.scope.as_deref().unwrap_or_default(),
            ))),
            Err(e) if e.is_token_invalid() => Ok(None),
            Err(e) => {
                tracing::warn!(user = %row.user_id, error = %e, "cannot check the stored scopes with Google");
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                Err(unavailable(e, wait))
            }
        }
    }

    /// Store Google's list with its MAC (if the row still holds what was
    /// read), and record the correction when the list was wrong.
    async fn correct(
        &self,
        provider: &Provider,
        row: TokenRow,
        truth: ScopeSet,
    ) -> Result<TokenRow, TokenError> {
        let user = row.user_id;
        let stored = row.refresh_token.as_deref();
        let refresh = self.cipher.open_opt(user, Field::RefreshToken, stored)?;
        let mac = self.scopes_mac(user, row.google_sub.as_deref(), refresh.as_ref(), &truth);
        let json = truth.to_json();
        let read = (row.scopes.as_ref(), row.scopes_mac.as_deref());
        let wrong = truth != ScopeSet::from_json(row.scopes.as_ref());
        if !wrong && mac.is_none() {
            // No key to vouch with: the list is right, nothing to write.
            return Ok(row);
        }
        let mut tx = self.db.begin().await?;
        if !gmail_token::correct_scopes(&mut *tx, user, read, &json, mac.as_deref()).await? {
            // Another writer changed the row meanwhile: the caller asks again.
            return Err(unverifiable());
        }
        if wrong {
            self.record_correction(provider, &row, &truth, Some(tx))
                .await?;
        } else {
            self.commit_for(user, tx).await?;
            tracing::info!(%user, "stored scopes confirmed by Google; MAC written");
        }
        Ok(TokenRow {
            scopes: Some(json),
            scopes_mac: mac,
            ..row
        })
    }

    /// The `scopes_corrected` event and webhook (in `tx`, when the
    /// correction is written there), a warn line and the metric.
    async fn record_correction(
        &self,
        provider: &Provider,
        row: &TokenRow,
        truth: &ScopeSet,
        tx: Option<crate::passport::token::Tx>,
    ) -> Result<(), sqlx::Error> {
        let user = row.user_id;
        let before = ScopeSet::from_json(row.scopes.as_ref());
        let detail = correction_detail(&before, truth);
        let mut tx = match tx {
            Some(tx) => tx,
            None => self.db.begin().await?,
        };
        let event = NewEvent {
            scopes_before: row.scopes.clone(),
            scopes_after: Some(truth.to_json()),
            error_code: Some("scopes_edited"),
            detail: Some(&detail),
            ..NewEvent::new(user, provider.name, EventKind::ScopesCorrected)
        };
        passport_event::insert(&mut *tx, &event).await?;
        let missing = provider.scopes.missing_from(truth);
        let facts = webhooks::Facts {
            email: row.email.as_deref(),
            granted: Some(truth),
            previous: Some(&before),
            missing: Some(&missing),
            ..Default::default()
        };
        let kind = webhooks::Kind::ScopesCorrected;
        webhooks::enqueue(&mut tx, self, provider, kind, user, facts).await?;
        self.commit_for(user, tx).await?;
        metrics::counter!("passport_scopes_corrected_total").increment(1);
        tracing::warn!(%user, %detail, "gmail_token.scopes was edited outside the service; corrected from Google");
        Ok(())
    }
}

/// What the edit claimed that Google does not grant, and the reverse.
pub(crate) fn correction_detail(before: &ScopeSet, truth: &ScopeSet) -> String {
    let unlisted = truth.missing_from(before);
    let not_granted = before.missing_from(truth);
    let mut parts = Vec::new();
    if !not_granted.is_empty() {
        parts.push(format!("not granted by Google: {not_granted}"));
    }
    if !unlisted.is_empty() {
        parts.push(format!("granted but not listed: {unlisted}"));
    }
    parts.join("; ")
}

fn unavailable(source: GoogleError, retry_after: Duration) -> TokenError {
    TokenError::Unavailable {
        source,
        retry_after: retry_after.max(Duration::from_secs(1)),
    }
}

/// The row changed while it was checked, or Google named no scopes.
fn unverifiable() -> TokenError {
    let why = "the stored scopes could not be checked with Google just now";
    unavailable(GoogleError::Unavailable(why.into()), Duration::from_secs(1))
}
