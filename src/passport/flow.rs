//! The consent / 재인증 flow: start (store the attempt, build Google's URL) and
//! complete (take the attempt, exchange the code, store what Google granted,
//! decide the result the user sees).

use chrono::Utc;
use secrecy::ExposeSecret;
use url::Url;
use uuid::Uuid;

use crate::crypto::Field;
use crate::google::GoogleError;
use crate::passport::provider::Provider;
use crate::passport::return_to::{self, ReturnToError};
use crate::passport::scopes::ScopeSet;
use crate::passport::webhooks;
use crate::passport::{is_token_shaped, random_token, sha256};
use crate::state::AppState;
use crate::store::passport_event::{self, EventKind, NewEvent};
use crate::store::{gmail_token, oauth_state};

/// How long a consent attempt stays valid.
pub const STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Why a flow could not go on. Each variant has its own page.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
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
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored secret: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// A started consent: where to send the browser, and the browser-binding nonce
/// to put in the flow cookie.
pub struct Started {
    pub authorize_url: Url,
    pub cookie_name: String,
    pub browser_nonce: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").finish_non_exhaustive()
    }
}

/// Begin a consent (first connection and 재인증 alike).
///
/// The browser-binding nonce goes into a cookie named after the attempt
/// ([`flow_cookie_name`]), so that two tabs can each run a flow.
pub async fn start(
    app: &AppState,
    provider: &Provider,
    user_id: Uuid,
    return_to: Option<&str>,
) -> Result<Started, FlowError> {
    let settings = &app.settings;
    let return_to = match return_to {
        Some(raw) => return_to::validate(raw, &settings.allowed_return_origins)?,
        None => settings.inventory_url.clone(),
    };
    let browser_nonce = random_token();
    let state = random_token();
    let verifier = random_token();

    let existing = gmail_token::find(&app.db, user_id).await?;
    let login_hint = existing.as_ref().and_then(|r| r.email.clone());
    let redirect_uri = settings.redirect_uri(provider.name);
    let req = app.google.authorize_url(
        &redirect_uri,
        &provider.scopes,
        &state,
        &verifier,
        login_hint.as_deref(),
    );

    let state_hash = sha256(&state);
    let nonce_hash = sha256(&browser_nonce);
    let mut tx = app.db.begin().await?;
    oauth_state::insert(
        &mut *tx,
        &oauth_state::NewState {
            state_hash: &state_hash,
            user_id,
            provider: provider.name,
            pkce_verifier: &app.cipher.seal(user_id, Field::PkceVerifier, &verifier),
            requested_scopes: provider.scopes.to_json(),
            return_to: return_to.as_str(),
            browser_nonce_hash: &nonce_hash,
            expires_at: Utc::now() + STATE_TTL,
        },
    )
    .await?;
    let before = existing.as_ref().and_then(|r| r.scopes.clone());
    passport_event::insert(
        &mut *tx,
        &NewEvent {
            scopes_before: before,
            scopes_after: Some(provider.scopes.to_json()),
            ..NewEvent::new(user_id, provider.name, EventKind::ConsentStarted)
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("passport_consents_started_total", "provider" => provider.name).increment(1);
    tracing::info!(%user_id, provider = provider.name, "consent started");
    Ok(Started {
        authorize_url: req.url,
        cookie_name: flow_cookie_name(&state),
        browser_nonce,
    })
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
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
}

/// What happened, as the `result` parameter tells the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    Upgraded,
    /// The user unticked some scopes: these are still missing.
    Partial(ScopeSet),
    Denied,
    /// Another Google account than the stored one; missing scopes, if any.
    AccountChanged(ScopeSet),
    /// Google refused or failed; a short reason code.
    Error(&'static str),
}

impl Outcome {
    pub fn result(&self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Upgraded => "upgraded",
            Self::Partial(_) => "partial",
            Self::Denied => "denied",
            Self::AccountChanged(_) => "account_changed",
            Self::Error(_) => "error",
        }
    }
}

/// A completed callback: the outcome and where to send the browser.
#[derive(Debug)]
pub struct Completed {
    pub outcome: Outcome,
    pub redirect_to: Url,
}

/// Finish a consent from Google's redirect.
pub async fn complete(
    app: &AppState,
    provider: &Provider,
    params: CallbackParams,
    browser_nonce: Option<&str>,
    signed_in_user: Option<Uuid>,
) -> Result<Completed, FlowError> {
    let state = params.state.as_deref().ok_or(FlowError::MissingState)?;
    if !is_token_shaped(state) {
        return Err(FlowError::UnknownState);
    }
    let state_hash = sha256(state);

    // The attempt is only consumed when this browser holds the nonce it was
    // started with: another browser's visit leaves it to its owner.
    let nonce_hash = browser_nonce.filter(|n| is_token_shaped(n)).map(sha256);
    // And only by the ro-being user who started it, signed in now: on a
    // shared browser, nobody else's Google account can land on their passport.
    let taken = match (&nonce_hash, signed_in_user) {
        (Some(h), Some(user)) => {
            oauth_state::take(&app.db, &state_hash, provider.name, h, Some(user)).await?
        }
        _ => None,
    };
    let Some(attempt) = taken else {
        let peeked = oauth_state::peek(&app.db, &state_hash, provider.name).await?;
        let now = Utc::now();
        let Some(peeked) = peeked else {
            return Err(FlowError::UnknownState);
        };
        if peeked.expires_at < now {
            oauth_state::delete(&app.db, &state_hash).await?;
            return Err(FlowError::ExpiredState);
        }
        return Err(match signed_in_user {
            None => FlowError::NoSession,
            Some(u) if u != peeked.user_id => FlowError::UserMismatch,
            _ => FlowError::BrowserMismatch,
        });
    };
    if attempt.expires_at < Utc::now() {
        return Err(FlowError::ExpiredState);
    }
    let user_id = attempt.user_id;
    let verifier = app
        .cipher
        .open(user_id, Field::PkceVerifier, &attempt.pkce_verifier)?;
    // Stored by us after validation; re-parse defensively.
    let return_to =
        Url::parse(&attempt.return_to).unwrap_or_else(|_| app.settings.inventory_url.clone());

    let CallbackParams { error, code, .. } = params;
    let outcome = if error.as_deref() == Some("access_denied") {
        let event = NewEvent {
            error_code: Some("access_denied"),
            ..NewEvent::new(user_id, provider.name, EventKind::Denied)
        };
        passport_event::insert(&app.db, &event).await?;
        Outcome::Denied
    } else if let Some(other) = error {
        tracing::warn!(%user_id, error = %sanitize(&other), "google returned an error to the callback");
        Outcome::Error("google_error")
    } else if let Some(code) = code {
        exchange_and_store(app, provider, user_id, &code, verifier.expose_secret()).await?
    } else {
        Outcome::Error("missing_code")
    };

    metrics::counter!(
        "passport_consents_completed_total",
        "provider" => provider.name,
        "result" => outcome.result()
    )
    .increment(1);
    tracing::info!(%user_id, provider = provider.name, result = outcome.result(), "consent completed");
    Ok(Completed {
        redirect_to: result_url(&return_to, provider.name, &outcome),
        outcome,
    })
}

/// Keep only harmless characters of a value Google put in the URL, for logs.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

async fn exchange_and_store(
    app: &AppState,
    provider: &Provider,
    user_id: Uuid,
    code: &str,
    verifier: &str,
) -> Result<Outcome, FlowError> {
    let redirect_uri = app.settings.redirect_uri(provider.name);
    let tokens = match app
        .google
        .exchange_code(&redirect_uri, code, verifier)
        .await
    {
        Ok(t) => t,
        Err(e) => return Ok(Outcome::Error(google_reason(&e, "code_rejected"))),
    };
    let access = tokens.access_token.expose_secret();
    // Granted scopes come from Google's answer, never from what we asked for.
    let granted = match &tokens.scopes {
        Some(s) => s.clone(),
        None => match app.google.tokeninfo(access).await {
            Ok(info) => ScopeSet::from_google(info.scope.as_deref().unwrap_or("")),
            Err(e) => return Ok(Outcome::Error(google_reason(&e, "tokeninfo_failed"))),
        },
    };
    let account = match app.google.userinfo(access).await {
        Ok(a) => a,
        Err(e) => return Ok(Outcome::Error(google_reason(&e, "userinfo_failed"))),
    };

    let mut tx = app.db.begin().await?;
    let prev = gmail_token::find_for_update(&mut *tx, user_id).await?;
    let prev_scopes = prev
        .as_ref()
        .map(|r| ScopeSet::from_json(r.scopes.as_ref()));
    let account_changed =
        prev.as_ref()
            .is_some_and(|p| match (&p.google_sub, &p.email, &account.email) {
                (Some(sub), _, _) => *sub != account.sub,
                (None, Some(old), Some(new)) => !old.eq_ignore_ascii_case(new),
                _ => false,
            });
    // Keep the stored refresh token when Google sent none, but never carry
    // one over to another account.
    // Another Google account replaces this one: its grant is revoked below,
    // once the new connection is stored, so that no dropped grant stays alive.
    let replaced_grant = if account_changed {
        let old = prev.as_ref().and_then(|p| p.refresh_token.as_deref());
        app.cipher
            .open_opt(user_id, Field::RefreshToken, old)
            .unwrap_or(None)
    } else {
        None
    };
    let refresh_token: Option<String> = match &tokens.refresh_token {
        Some(r) => Some(
            app.cipher
                .seal(user_id, Field::RefreshToken, r.expose_secret()),
        ),
        None if !account_changed => {
            // Re-sealed under the active key (plaintext rows get encrypted here).
            let old = prev.as_ref().and_then(|p| p.refresh_token.as_deref());
            app.cipher
                .open_opt(user_id, Field::RefreshToken, old)?
                .map(|r| {
                    app.cipher
                        .seal(user_id, Field::RefreshToken, r.expose_secret())
                })
        }
        None => None,
    };
    let sealed_access = app.cipher.seal(user_id, Field::AccessToken, access);
    let last_error = refresh_token
        .is_none()
        .then_some("no_refresh_token: Google returned no refresh token; press 재인증");
    let email = account.email.clone().or_else(|| {
        if account_changed {
            None
        } else {
            prev.as_ref().and_then(|p| p.email.clone())
        }
    });
    gmail_token::upsert_consent(
        &mut *tx,
        &gmail_token::ConsentWrite {
            user_id,
            email: email.as_deref(),
            google_sub: &account.sub,
            access_token: &sealed_access,
            refresh_token: refresh_token.as_deref(),
            token_type: &tokens.token_type,
            expires_at: tokens.expires_at,
            scopes: granted.to_json(),
            last_error,
        },
    )
    .await?;

    let missing = provider.scopes.missing_from(&granted);
    let (outcome, kind) = if account_changed {
        (
            Outcome::AccountChanged(missing.clone()),
            EventKind::AccountChanged,
        )
    } else if !missing.is_empty() {
        (Outcome::Partial(missing.clone()), EventKind::PartialGrant)
    } else if prev_scopes
        .as_ref()
        .is_some_and(|p| !p.is_superset(&granted))
    {
        (Outcome::Upgraded, EventKind::Upgraded)
    } else {
        (Outcome::Connected, EventKind::Connected)
    };
    let detail = (!missing.is_empty()).then(|| format!("missing: {missing}"));
    passport_event::insert(
        &mut *tx,
        &NewEvent {
            scopes_before: prev.as_ref().and_then(|p| p.scopes.clone()),
            scopes_after: Some(granted.to_json()),
            email_before: prev.as_ref().and_then(|p| p.email.as_deref()),
            email_after: email.as_deref(),
            detail: detail.as_deref(),
            ..NewEvent::new(user_id, provider.name, kind)
        },
    )
    .await?;
    let hook = match kind {
        EventKind::AccountChanged => webhooks::Kind::AccountChanged,
        EventKind::PartialGrant => webhooks::Kind::PartialGrant,
        EventKind::Upgraded => webhooks::Kind::Upgraded,
        _ => webhooks::Kind::Connected,
    };
    let facts = webhooks::Facts {
        email: email.as_deref(),
        previous_email: prev.as_ref().and_then(|p| p.email.as_deref()),
        granted: Some(&granted),
        missing: Some(&missing),
        ..Default::default()
    };
    webhooks::enqueue(&mut tx, app, provider.name, hook, user_id, facts.clone()).await?;
    if prev.as_ref().is_some_and(|p| p.status != "active") {
        webhooks::enqueue(
            &mut tx,
            app,
            provider.name,
            webhooks::Kind::Recovered,
            user_id,
            facts,
        )
        .await?;
    }
    tx.commit().await?;
    if let Some(old) = replaced_grant {
        if let Err(e) = app.google.revoke(old.expose_secret()).await {
            tracing::warn!(%user_id, error = %e, "could not revoke the replaced account's grant");
        }
    }
    Ok(outcome)
}

fn google_reason(e: &GoogleError, rejected: &'static str) -> &'static str {
    tracing::warn!(error = %e, "google call failed during consent");
    match e {
        GoogleError::Rejected { .. } => rejected,
        GoogleError::Unavailable(_) => "google_unavailable",
        GoogleError::Protocol(_) => "google_protocol",
    }
}

/// `return_to` with `passport`, `result` and (when something is missing)
/// `missing` / `reason` set; other parameters of `return_to` are kept.
pub fn result_url(return_to: &Url, provider: &str, outcome: &Outcome) -> Url {
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
    }
}
