//! The consent / 재인증 flow: start (store the attempt, build Google's URL) and
//! complete (claim the attempt, exchange the code, store what Google granted,
//! decide the result the user sees).
//!
//! The callback marks its attempt in use before calling Google (a replay is
//! refused from then on) and marks it done, with its result, in the
//! transaction that records how the callback ended. A done attempt's replay
//! (back, then Continue again) by the same user in the same browser applies
//! nothing and lands on the current state ([`Outcome::AlreadyDone`]); anyone
//! else's is refused as unknown. An attempt left in use but not done means the
//! instance stopped in between: nothing was stored, and its replay says so
//! ([`FlowError::Interrupted`]).

use chrono::Utc;
use secrecy::ExposeSecret;
use url::Url;
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::{GoogleError, Tokens, UserInfo};
use crate::passport::flash::{Flash, Refused, Shown};
use crate::passport::prior_grant;
use crate::passport::provider::Provider;
use crate::passport::return_to::{self, ReturnToError};
use crate::passport::webhooks;
use crate::passport::{is_token_shaped, random_token, sha256, Passport};
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{ConnectionStatus, TokenRow};
use crate::store::oauth_state::StateRow;
use crate::store::passport_event::{self, EventKind, NewEvent};
use crate::store::{gmail_token, oauth_state};

/// How long a consent attempt stays valid.
pub(crate) const STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Why a flow could not go on. Each variant has its own page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FlowError {
    #[error("return_to refused: {0}")]
    ReturnTo(#[from] ReturnToError),
    #[error("the callback has no state")]
    MissingState,
    #[error("unknown or already used state")]
    UnknownState,
    #[error("expired state")]
    ExpiredState,
    #[error("state belongs to another browser")]
    BrowserMismatch,
    #[error("state belongs to another signed-in user")]
    UserMismatch,
    #[error("nobody is signed in at the callback")]
    NoSession,
    #[error("an earlier callback of this attempt was interrupted before it finished")]
    Interrupted,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored secret: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// A started consent: where to send the browser, and the browser-binding nonce
/// to put in the flow cookie.
pub(crate) struct Started {
    pub authorize_url: Url,
    pub cookie_name: String,
    pub browser_nonce: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

impl Passport {
    /// Begin a consent (first connection and 재인증 alike).
    ///
    /// The browser-binding nonce goes into a cookie named after the attempt
    /// ([`flow_cookie_name`]), so that two tabs can each run a flow.
    pub(crate) async fn start_consent(
        &self,
        provider: &Provider,
        user_id: Uuid,
        return_to: Option<&str>,
    ) -> Result<Started, FlowError> {
        let return_to = match return_to {
            Some(raw) => return_to::validate(raw, &self.settings.allowed_return_origins)?,
            None => self.settings.inventory_url.clone(),
        };
        let browser_nonce = random_token();
        let state = random_token();
        let verifier = random_token();
        let existing = gmail_token::find(&self.db, user_id).await?;
        let login_hint = existing.as_ref().and_then(|r| r.email.as_deref());
        let redirect_uri = self.settings.redirect_uri(provider.name);
        let req = self.google.authorize_url(
            &redirect_uri,
            &provider.scopes,
            &state,
            &verifier,
            login_hint,
        );
        let attempt = oauth_state::NewState {
            state_hash: &sha256(&state),
            user_id,
            provider: provider.name,
            pkce_verifier: &self.cipher.seal(user_id, Field::PkceVerifier, &verifier),
            requested_scopes: provider.scopes.to_json(),
            return_to: return_to.as_str(),
            browser_nonce_hash: &sha256(&browser_nonce),
            expires_at: Utc::now() + STATE_TTL,
        };
        let event = NewEvent {
            scopes_before: existing.and_then(|r| r.scopes),
            scopes_after: Some(provider.scopes.to_json()),
            ..NewEvent::new(user_id, provider.name, EventKind::ConsentStarted)
        };
        let mut tx = self.db.begin().await?;
        oauth_state::insert(&mut *tx, &attempt).await?;
        passport_event::insert(&mut *tx, &event).await?;
        tx.commit().await?;
        metrics::counter!("passport_consents_started_total", "provider" => provider.name)
            .increment(1);
        tracing::info!(%user_id, provider = provider.name, "consent started");
        Ok(Started {
            authorize_url: req.url,
            cookie_name: flow_cookie_name(&state),
            browser_nonce,
        })
    }

    /// Finish a consent from Google's redirect.
    pub(crate) async fn complete_consent(
        &self,
        provider: &Provider,
        params: CallbackParams,
        browser_nonce: Option<&str>,
        signed_in_user: Option<Uuid>,
    ) -> Result<Completed, FlowError> {
        let state = params.state.as_deref().ok_or(FlowError::MissingState)?;
        let attempt = match self
            .claim_attempt(provider, state, browser_nonce, signed_in_user)
            .await?
        {
            Claim::Fresh(attempt) => attempt,
            Claim::Done { user_id, return_to } => {
                return Ok(self.replayed(provider, user_id, &return_to));
            }
        };
        let user_id = attempt.user_id;
        let verifier = self
            .cipher
            .open(user_id, Field::PkceVerifier, &attempt.pkce_verifier)?;
        // Stored by us after validation; re-parse defensively.
        let return_to =
            Url::parse(&attempt.return_to).unwrap_or_else(|_| self.settings.inventory_url.clone());
        let none = ScopeSet::new;
        let refused = params
            .error
            .as_deref()
            .and_then(|e| Refused::from_redirect(e, params.error_subtype.as_deref()));
        let (outcome, added) = match (params.error, params.code) {
            (Some(_), _) if refused.is_some() => {
                let reason = refused.map_or("google_error", Refused::as_str);
                tracing::info!(%user_id, reason, "google refused the consent");
                (self.abandon(&attempt, reason).await?, none())
            }
            (Some(e), _) if e == "access_denied" => {
                (self.record_denied(provider, &attempt).await?, none())
            }
            (Some(other), _) => {
                tracing::warn!(%user_id, error = %sanitize(&other), "google returned an error to the callback");
                (self.abandon(&attempt, "google_error").await?, none())
            }
            (None, Some(code)) => {
                self.exchange_and_store(provider, &attempt, &code, verifier.expose_secret())
                    .await?
            }
            (None, None) => (self.abandon(&attempt, "missing_code").await?, none()),
        };
        let result = outcome.result();
        metrics::counter!("passport_consents_completed_total", "provider" => provider.name, "result" => result)
            .increment(1);
        tracing::info!(%user_id, provider = provider.name, result, "consent completed");
        let flash = Flash {
            added,
            missing: outcome.missing().cloned().unwrap_or_default(),
            refused: match &outcome {
                Outcome::Error(reason) => reason.parse().ok(),
                _ => None,
            },
            ..Flash::new(user_id, provider.name, outcome.shown())
        };
        Ok(Completed {
            redirect_to: result_url(&return_to, provider.name, &outcome),
            flash,
        })
    }

    /// A replay of a finished attempt by its own user in its own browser:
    /// nothing is applied; back to where the attempt was to return, saying so.
    fn replayed(&self, provider: &Provider, user_id: Uuid, return_to: &str) -> Completed {
        let return_to =
            Url::parse(return_to).unwrap_or_else(|_| self.settings.inventory_url.clone());
        let outcome = Outcome::AlreadyDone;
        metrics::counter!("passport_consents_completed_total", "provider" => provider.name, "result" => outcome.result())
            .increment(1);
        tracing::info!(%user_id, provider = provider.name, "finished consent replayed: nothing applied");
        Completed {
            redirect_to: result_url(&return_to, provider.name, &outcome),
            flash: Flash::new(user_id, provider.name, outcome.shown()),
        }
    }

    /// Claim the attempt named by `state` (mark it in use), but only for the
    /// browser holding its nonce and the ro-being user who started it, signed
    /// in now: another browser's visit leaves it to its owner, and on a shared
    /// browser nobody else's Google account can land on their passport.
    async fn claim_attempt(
        &self,
        provider: &Provider,
        state: &str,
        browser_nonce: Option<&str>,
        signed_in_user: Option<Uuid>,
    ) -> Result<Claim, FlowError> {
        if !is_token_shaped(state) {
            return Err(FlowError::UnknownState);
        }
        let state_hash = sha256(state);
        let nonce_hash = browser_nonce.filter(|n| is_token_shaped(n)).map(sha256);
        let claimed = match (&nonce_hash, signed_in_user) {
            (Some(h), Some(user)) => {
                oauth_state::claim(&self.db, &state_hash, provider.name, h, user).await?
            }
            _ => None,
        };
        match claimed {
            Some(a) => Ok(Claim::Fresh(a)),
            None => {
                self.why_not_claimed(provider, &state_hash, nonce_hash.as_deref(), signed_in_user)
                    .await
            }
        }
    }

    /// Why an attempt could not be claimed (an expired one is deleted). Only
    /// its own user, in its own browser, learns that it was interrupted or
    /// is done already (a done attempt is unknown to anyone else).
    async fn why_not_claimed(
        &self,
        provider: &Provider,
        state_hash: &[u8],
        nonce_hash: Option<&[u8]>,
        signed_in_user: Option<Uuid>,
    ) -> Result<Claim, FlowError> {
        let Some(peeked) = oauth_state::peek(&self.db, state_hash, provider.name).await? else {
            return Err(FlowError::UnknownState);
        };
        if peeked.expires_at < Utc::now() {
            oauth_state::delete(&self.db, state_hash).await?;
            return Err(FlowError::ExpiredState);
        }
        let own = signed_in_user == Some(peeked.user_id)
            && nonce_hash == Some(peeked.browser_nonce_hash.as_slice());
        if peeked.done_at.is_some() {
            return match own {
                true => Ok(Claim::Done {
                    user_id: peeked.user_id,
                    return_to: peeked.return_to,
                }),
                false => Err(FlowError::UnknownState),
            };
        }
        Err(match signed_in_user {
            None => FlowError::NoSession,
            Some(u) if u != peeked.user_id => FlowError::UserMismatch,
            _ if nonce_hash != Some(peeked.browser_nonce_hash.as_slice()) => {
                FlowError::BrowserMismatch
            }
            _ if peeked.used_at.is_some() => FlowError::Interrupted,
            // Unused, yet not claimable: expired by the database's clock.
            _ => FlowError::ExpiredState,
        })
    }

    /// The user declined: audit it and end the attempt, in one transaction.
    async fn record_denied(
        &self,
        provider: &Provider,
        attempt: &StateRow,
    ) -> Result<Outcome, FlowError> {
        let event = NewEvent {
            error_code: Some("access_denied"),
            ..NewEvent::new(attempt.user_id, provider.name, EventKind::Denied)
        };
        let outcome = Outcome::Denied;
        let mut tx = self.db.begin().await?;
        passport_event::insert(&mut *tx, &event).await?;
        oauth_state::finish(&mut *tx, &attempt.state_hash, outcome.result()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// End the attempt without a connection: Google failed or refused.
    async fn abandon(
        &self,
        attempt: &StateRow,
        reason: &'static str,
    ) -> Result<Outcome, FlowError> {
        let outcome = Outcome::Error(reason);
        oauth_state::finish(&self.db, &attempt.state_hash, outcome.result()).await?;
        Ok(outcome)
    }

    /// Exchange the code, then store what Google granted and end the attempt,
    /// in one transaction. Returns the outcome and the permissions the stored
    /// grant gained.
    async fn exchange_and_store(
        &self,
        provider: &Provider,
        attempt: &StateRow,
        code: &str,
        verifier: &str,
    ) -> Result<(Outcome, ScopeSet), FlowError> {
        let grant = match self.fetch_grant(provider, code, verifier).await {
            Ok(g) => g,
            Err(reason) => return Ok((self.abandon(attempt, reason).await?, ScopeSet::new())),
        };
        let user_id = attempt.user_id;
        // Before the row is locked: Google is asked only for rows that name
        // no account.
        let vouched = self.vouch_stored_grant(provider, user_id).await?;
        let mut tx = self.db.begin().await?;
        let prev = gmail_token::find_for_update(&mut *tx, user_id)
            .await?
            .map(|row| prior_grant::with_vouched(row, vouched.as_ref()));
        let outcome = decide_outcome(
            prev.as_ref(),
            &grant.scopes,
            &grant.account,
            &provider.scopes,
        );
        oauth_state::finish(&mut *tx, &attempt.state_hash, outcome.result()).await?;
        let before = prev
            .as_ref()
            .map(|p| ScopeSet::from_json(p.scopes.as_ref()));
        let added = grant.scopes.missing_from(&before.unwrap_or_default());
        let write = self.sealed_write(user_id, prev.as_ref(), &grant, &outcome)?;
        gmail_token::upsert_consent(&mut *tx, &write.row()).await?;
        let sealed_refresh = write.refresh_token.as_deref();
        self.write_refresh_ids(&mut tx, user_id, sealed_refresh)
            .await?;
        let replaced = write.replaced_grant;
        self.announce(
            &mut tx,
            provider,
            user_id,
            prev.as_ref(),
            &grant,
            &outcome,
            write.email.as_deref(),
        )
        .await?;
        self.commit_for(user_id, tx).await?;
        if let Some(old) = replaced {
            if let Err(e) = self.google.revoke(old.expose_secret()).await {
                tracing::warn!(%user_id, error = %e, "could not revoke the replaced account's grant");
            }
        }
        Ok((outcome, added))
    }

    /// The tokens, the scopes Google granted (from its answer, never from what
    /// we asked for) and the account. `Err` is the reason code the user sees.
    async fn fetch_grant(
        &self,
        provider: &Provider,
        code: &str,
        verifier: &str,
    ) -> Result<Grant, &'static str> {
        let redirect_uri = self.settings.redirect_uri(provider.name);
        let tokens = self
            .google
            .exchange_code(&redirect_uri, code, verifier)
            .await
            .map_err(|e| google_reason(&e, "code_rejected"))?;
        let access = tokens.access_token.expose_secret();
        let scopes = match &tokens.scopes {
            Some(s) => s.clone(),
            None => {
                let info = self.google.tokeninfo(access).await;
                let info = info.map_err(|e| google_reason(&e, "tokeninfo_failed"))?;
                ScopeSet::from_google(info.scope.as_deref().unwrap_or(""))
            }
        };
        let account = self
            .google
            .userinfo(access)
            .await
            .map_err(|e| google_reason(&e, "userinfo_failed"))?;
        Ok(Grant {
            tokens,
            scopes,
            account,
        })
    }

    /// The row to write, sealed. Keeps the stored refresh token when Google
    /// sent none, but only for the same subject: never for another account
    /// (that one is handed back as `replaced_grant`, to be revoked once the
    /// new connection is stored), nor one whose subject is not known (an
    /// email alone is not enough): then the connection is stored without a
    /// refresh token and asks for 재인증.
    fn sealed_write(
        &self,
        user_id: Uuid,
        prev: Option<&TokenRow>,
        grant: &Grant,
        outcome: &Outcome,
    ) -> Result<SealedWrite, FlowError> {
        let changed = matches!(outcome, Outcome::AccountChanged(_));
        let old = prev.and_then(|p| p.refresh_token.as_deref());
        let replaced_grant = match changed {
            true => self
                .cipher
                .open_opt(user_id, Field::RefreshToken, old)
                .unwrap_or(None),
            false => None,
        };
        let stored_sub = prev.and_then(prior_grant::known_sub);
        let same_account = stored_sub == Some(grant.account.sub.as_str());
        let refresh = match (&grant.tokens.refresh_token, same_account) {
            (Some(r), _) => Some(r.clone()),
            // Re-sealed under the active key (plaintext rows get encrypted here).
            (None, true) => self.cipher.open_opt(user_id, Field::RefreshToken, old)?,
            (None, false) => None,
        };
        let seal = |field, secret: &secrecy::SecretString| {
            self.cipher.seal(user_id, field, secret.expose_secret())
        };
        let keep_email = || {
            let old = prev.and_then(|p| prior_grant::known(&p.email));
            old.map(str::to_string).filter(|_| !changed)
        };
        Ok(SealedWrite {
            user_id,
            email: grant.account.email.clone().or_else(keep_email),
            google_sub: grant.account.sub.clone(),
            access_token: seal(Field::AccessToken, &grant.tokens.access_token),
            refresh_token: refresh.as_ref().map(|r| seal(Field::RefreshToken, r)),
            token_type: grant.tokens.token_type.clone(),
            expires_at: grant.tokens.expires_at,
            scopes: grant.scopes.to_json(),
            scopes_mac: self.scopes_mac(
                user_id,
                Some(&grant.account.sub),
                refresh.as_ref(),
                &grant.scopes,
            ),
            replaced_grant,
        })
    }

    /// Audit the outcome and announce it (and a recovery) to ro-being, in the
    /// transaction that stored the connection.
    #[allow(clippy::too_many_arguments)]
    async fn announce(
        &self,
        tx: &mut sqlx::PgConnection,
        provider: &Provider,
        user_id: Uuid,
        prev: Option<&TokenRow>,
        grant: &Grant,
        outcome: &Outcome,
        email: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let missing = provider.scopes.missing_from(&grant.scopes);
        let detail = (!missing.is_empty()).then(|| format!("missing: {missing}"));
        let previous_email = prev.and_then(|p| prior_grant::known(&p.email));
        let event = NewEvent {
            scopes_before: prev.and_then(|p| p.scopes.clone()),
            scopes_after: Some(grant.scopes.to_json()),
            email_before: previous_email,
            email_after: email,
            detail: detail.as_deref(),
            ..NewEvent::new(user_id, provider.name, outcome.event_kind())
        };
        passport_event::insert(&mut *tx, &event).await?;
        let facts = webhooks::Facts {
            email,
            previous_email,
            granted: Some(&grant.scopes),
            missing: Some(&missing),
            ..Default::default()
        };
        if let Some(kind) = outcome.webhook_kind() {
            webhooks::enqueue(tx, self, provider, kind, user_id, facts.clone()).await?;
        }
        if prev.is_some_and(|p| p.status != ConnectionStatus::Active) {
            let kind = webhooks::Kind::Recovered;
            webhooks::enqueue(tx, self, provider, kind, user_id, facts).await?;
        }
        Ok(())
    }
}

/// The flow cookie's name for one attempt: derived from its `state`, so the
/// callback finds the right nonce when several attempts run in one browser.
/// It reveals nothing of `state` (8 bytes of its SHA-256, hex).
pub fn flow_cookie_name(state: &str) -> String {
    let h = sha256(state);
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("passport_flow_{hex}")
}

/// The query of Google's redirect back to us.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// Google's `error_subtype` (e.g. `admin_policy_enforced` with
    /// `error=access_denied`).
    pub error_subtype: Option<String>,
}

/// What happened, as the `result` parameter tells the front end.
#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Outcome {
    Connected,
    Upgraded,
    /// The same account granted the same permissions as the stored, active
    /// connection (a second tab finishing after the first): nothing changed.
    Unchanged,
    /// The user unticked some scopes: these are still missing.
    Partial(ScopeSet),
    Denied,
    /// Another Google account than the stored one; missing scopes, if any.
    AccountChanged(ScopeSet),
    /// Google refused or failed; a short reason code.
    Error(&'static str),
    /// A replay of an attempt that had finished already: nothing applied.
    AlreadyDone,
}

impl Outcome {
    pub(crate) fn result(&self) -> &'static str {
        self.into()
    }

    /// What the item page's banner reports for this outcome.
    pub(crate) fn shown(&self) -> Shown {
        match self {
            Self::Connected => Shown::Connected,
            Self::Upgraded => Shown::Upgraded,
            Self::Unchanged => Shown::Unchanged,
            Self::Partial(_) => Shown::Partial,
            Self::Denied => Shown::Denied,
            Self::AccountChanged(_) => Shown::AccountChanged,
            Self::Error(_) => Shown::Error,
            Self::AlreadyDone => Shown::AlreadyDone,
        }
    }

    /// The required permissions still missing, for the outcomes that have some.
    pub(crate) fn missing(&self) -> Option<&ScopeSet> {
        match self {
            Self::Partial(m) | Self::AccountChanged(m) => Some(m),
            _ => None,
        }
    }

    /// The audit event of a stored consent (the only outcomes recorded by
    /// [`Passport::announce`]: `Denied` is recorded by `record_denied`,
    /// `Error` and `AlreadyDone` store nothing).
    fn event_kind(&self) -> EventKind {
        match self {
            Self::AccountChanged(_) => EventKind::AccountChanged,
            Self::Partial(_) => EventKind::PartialGrant,
            Self::Upgraded => EventKind::Upgraded,
            Self::Unchanged => EventKind::Unchanged,
            Self::Denied => EventKind::Denied,
            Self::Connected | Self::Error(_) | Self::AlreadyDone => EventKind::Connected,
        }
    }

    /// The webhook announcing a stored consent; none when nothing changed.
    fn webhook_kind(&self) -> Option<webhooks::Kind> {
        match self {
            Self::AccountChanged(_) => Some(webhooks::Kind::AccountChanged),
            Self::Partial(_) => Some(webhooks::Kind::PartialGrant),
            Self::Upgraded => Some(webhooks::Kind::Upgraded),
            Self::Unchanged => None,
            _ => Some(webhooks::Kind::Connected),
        }
    }
}

/// A claimed attempt, or the replay of a finished one by its own user in
/// its own browser.
enum Claim {
    Fresh(StateRow),
    Done { user_id: Uuid, return_to: String },
}

/// The result of a consent that Google granted: a pure function of the
/// previous connection, what Google granted, the account and the scopes
/// this provider needs.
pub(crate) fn decide_outcome(
    previous: Option<&TokenRow>,
    granted: &ScopeSet,
    account: &UserInfo,
    required: &ScopeSet,
) -> Outcome {
    let missing = required.missing_from(granted);
    if previous.is_some_and(|p| is_other_account(p, account)) {
        return Outcome::AccountChanged(missing);
    }
    if !missing.is_empty() {
        return Outcome::Partial(missing);
    }
    let Some(prev) = previous else {
        return Outcome::Connected;
    };
    let prev_scopes = ScopeSet::from_json(prev.scopes.as_ref());
    if !prev_scopes.is_superset(granted) {
        return Outcome::Upgraded;
    }
    if prev_scopes == *granted && is_same_working_grant(prev, account) {
        return Outcome::Unchanged;
    }
    Outcome::Connected
}

/// Is the stored connection a working one (active, with a refresh token) of
/// this very account (by subject)? Then the same permissions change nothing.
fn is_same_working_grant(prev: &TokenRow, account: &UserInfo) -> bool {
    prev.status == ConnectionStatus::Active
        && prev.refresh_token.is_some()
        && prior_grant::known_sub(prev) == Some(account.sub.as_str())
}

/// Is `account` known to be another Google account than the stored one?
/// Only a subject says so (the row's, or the one Google vouched for, see
/// `prior_grant`): a blank value names nothing, and an email alone cannot
/// tell another account from the same account under a new address.
fn is_other_account(prev: &TokenRow, account: &UserInfo) -> bool {
    prior_grant::known_sub(prev).is_some_and(|sub| sub != account.sub)
}

/// A completed callback: where to send the browser, and what to tell it.
#[derive(Debug)]
pub(crate) struct Completed {
    pub redirect_to: Url,
    /// The result as recorded, for the item page's banner.
    pub flash: Flash,
}

/// What Google granted in one consent.
struct Grant {
    tokens: Tokens,
    scopes: ScopeSet,
    account: UserInfo,
}

/// A connection ready to store (secrets sealed).
struct SealedWrite {
    user_id: Uuid,
    email: Option<String>,
    google_sub: String,
    access_token: String,
    refresh_token: Option<String>,
    token_type: String,
    expires_at: Option<chrono::DateTime<Utc>>,
    scopes: serde_json::Value,
    /// The MAC vouching for `scopes` (user, account, refresh token, list).
    scopes_mac: Option<String>,
    /// The replaced account's refresh token, to revoke after the commit.
    replaced_grant: Option<secrecy::SecretString>,
}

impl SealedWrite {
    fn row(&self) -> gmail_token::ConsentWrite<'_> {
        gmail_token::ConsentWrite {
            user_id: self.user_id,
            email: self.email.as_deref(),
            google_sub: &self.google_sub,
            access_token: &self.access_token,
            refresh_token: self.refresh_token.as_deref(),
            token_type: &self.token_type,
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
            scopes_mac: self.scopes_mac.as_deref(),
            last_error: self
                .refresh_token
                .is_none()
                .then_some("no_refresh_token: Google returned no refresh token; press 재인증"),
        }
    }
}

/// Keep only harmless characters of a value Google put in the URL, for logs.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

fn google_reason(e: &GoogleError, rejected: &'static str) -> &'static str {
    tracing::warn!(error = %e, "google call failed during consent");
    match e {
        GoogleError::Rejected { .. } => rejected,
        GoogleError::Unavailable(_) | GoogleError::RateLimited { .. } => "google_unavailable",
        GoogleError::Protocol(_) => "google_protocol",
    }
}

/// `return_to` with `passport`, `result` and (when something is missing)
/// `missing` / `reason` set; other parameters of `return_to` are kept.
pub(crate) fn result_url(return_to: &Url, provider: &str, outcome: &Outcome) -> Url {
    const OURS: [&str; 4] = ["passport", "result", "missing", "reason"];
    let mut url = return_to.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !OURS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("passport", provider);
        q.append_pair("result", outcome.result());
        if let Outcome::Error(reason) = outcome {
            q.append_pair("reason", reason);
        }
    }
    if let Outcome::Partial(m) | Outcome::AccountChanged(m) = outcome {
        if !m.is_empty() {
            // Short names are [a-z0-9._-]: the comma list needs no escaping.
            let q = format!("{}&missing={m}", url.query().unwrap_or_default());
            url.set_query(Some(&q));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(names: &[&str]) -> ScopeSet {
        ScopeSet::parse_known(names.iter().copied()).unwrap()
    }

    fn account(sub: &str, email: &str) -> UserInfo {
        UserInfo {
            sub: sub.into(),
            email: Some(email.into()),
        }
    }

    fn previous(sub: Option<&str>, email: &str, granted: &[&str]) -> TokenRow {
        TokenRow {
            user_id: Uuid::nil(),
            email: Some(email.into()),
            google_sub: sub.map(str::to_string),
            access_token: None,
            refresh_token: None,
            token_type: None,
            expires_at: None,
            scopes: Some(scopes(granted).to_json()),
            scopes_mac: None,
            status: ConnectionStatus::Active,
            last_error: None,
            last_refreshed_at: None,
            consented_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_outcome_follows_from_the_previous_connection_the_grant_and_the_account() {
        let required = scopes(&["gmail.send", "calendar", "calendar.events"]);
        let all = required.clone();
        let gmail = scopes(&["gmail.send"]);
        let jisoo = account("sub-1", "jisoo@example.com");
        let old = previous(Some("sub-1"), "jisoo@example.com", &["gmail.send"]);
        let full = previous(
            Some("sub-1"),
            "jisoo@example.com",
            &["gmail.send", "calendar", "calendar.events"],
        );
        assert_eq!(
            decide_outcome(None, &all, &jisoo, &required),
            Outcome::Connected
        );
        assert_eq!(
            decide_outcome(Some(&old), &all, &jisoo, &required),
            Outcome::Upgraded
        );
        assert_eq!(
            decide_outcome(Some(&full), &all, &jisoo, &required),
            Outcome::Connected
        );
        assert_eq!(
            decide_outcome(Some(&old), &gmail, &jisoo, &required),
            Outcome::Partial(scopes(&["calendar", "calendar.events"]))
        );
        let minho = account("sub-2", "minho@example.com");
        assert_eq!(
            decide_outcome(Some(&full), &gmail, &minho, &required),
            Outcome::AccountChanged(scopes(&["calendar", "calendar.events"]))
        );
        // A row adopted without a subject (or with a blank one) is never
        // another account by its email alone: only a subject says so.
        let adopted = previous(None, "Jisoo@Example.com", &["gmail.send"]);
        assert_eq!(
            decide_outcome(Some(&adopted), &all, &jisoo, &required),
            Outcome::Upgraded
        );
        assert_eq!(
            decide_outcome(Some(&adopted), &all, &minho, &required),
            Outcome::Upgraded
        );
        let blank = previous(Some(""), "", &["gmail.send"]);
        assert_eq!(
            decide_outcome(Some(&blank), &all, &jisoo, &required),
            Outcome::Upgraded
        );
        let vouched = previous(Some("sub-1"), "old-jisoo@example.com", &["gmail.send"]);
        assert_eq!(
            decide_outcome(Some(&vouched), &all, &jisoo, &required),
            Outcome::Upgraded
        );
    }

    #[test]
    fn the_same_grant_of_a_working_connection_changes_nothing() {
        let required = scopes(&["gmail.send", "calendar", "calendar.events"]);
        let all = required.clone();
        let jisoo = account("sub-1", "jisoo@example.com");
        let working = TokenRow {
            refresh_token: Some("enc:v1:k1:sealed".into()),
            ..previous(Some("sub-1"), "jisoo@example.com", ALL3)
        };
        // A second tab finishing after the first: same account, same list.
        assert_eq!(
            decide_outcome(Some(&working), &all, &jisoo, &required),
            Outcome::Unchanged
        );
        // Not when the connection needed 재인증: this consent repairs it.
        let broken = TokenRow {
            status: ConnectionStatus::ReauthRequired,
            ..working.clone()
        };
        assert_eq!(
            decide_outcome(Some(&broken), &all, &jisoo, &required),
            Outcome::Connected
        );
        // Not when no refresh token was stored: this consent may bring one.
        let tokenless = TokenRow {
            refresh_token: None,
            ..working.clone()
        };
        assert_eq!(
            decide_outcome(Some(&tokenless), &all, &jisoo, &required),
            Outcome::Connected
        );
        // Not when the stored list held more than this grant (it shrinks).
        let more = TokenRow {
            scopes: Some(
                scopes(&[
                    "gmail.send",
                    "gmail.readonly",
                    "calendar",
                    "calendar.events",
                ])
                .to_json(),
            ),
            ..working.clone()
        };
        assert_eq!(
            decide_outcome(Some(&more), &all, &jisoo, &required),
            Outcome::Connected
        );
        // Not for a row that names no account: only a subject says "same".
        let adopted = TokenRow {
            google_sub: None,
            ..working.clone()
        };
        assert_eq!(
            decide_outcome(Some(&adopted), &all, &jisoo, &required),
            Outcome::Connected
        );
        // Another account, or something missing, is never "unchanged".
        let minho = account("sub-2", "minho@example.com");
        assert_eq!(
            decide_outcome(Some(&working), &all, &minho, &required),
            Outcome::AccountChanged(ScopeSet::new())
        );
        let gmail = scopes(&["gmail.send"]);
        assert_eq!(
            decide_outcome(Some(&working), &gmail, &jisoo, &required),
            Outcome::Partial(scopes(&["calendar", "calendar.events"]))
        );
        assert_eq!(Outcome::Unchanged.result(), "unchanged");
        assert_eq!(Outcome::Unchanged.webhook_kind(), None);
        assert_eq!(Outcome::Unchanged.event_kind(), EventKind::Unchanged);
    }

    const ALL3: &[&str] = &["gmail.send", "calendar", "calendar.events"];

    #[test]
    fn result_url_keeps_other_params_and_replaces_ours() {
        let rt = Url::parse("https://ro-being.com/items?tab=gmail&result=old&passport=x").unwrap();
        let missing = ScopeSet::parse_known(["calendar,calendar.events"]).unwrap();
        let u = result_url(&rt, "gmail", &Outcome::Partial(missing));
        assert_eq!(
            u.as_str(),
            "https://ro-being.com/items?tab=gmail&passport=gmail&result=partial&missing=calendar,calendar.events"
        );
        let u = result_url(&rt, "gmail", &Outcome::Upgraded);
        assert!(u
            .as_str()
            .ends_with("tab=gmail&passport=gmail&result=upgraded"));
        let u = result_url(&rt, "gmail", &Outcome::AlreadyDone);
        assert!(u
            .as_str()
            .ends_with("tab=gmail&passport=gmail&result=already_done"));
    }
}
