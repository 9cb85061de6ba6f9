//! Google's revocation signals (RISC, Cross-Account Protection): Google
//! pushes a signed Security Event Token (RFC 8417) the moment a grant is
//! revoked, an account disabled, …; this module verifies it as Google
//! documents and applies it.
//!
//! Verification: RS256 only; the key named by `kid` from the JWKS of the
//! issuer's configuration document (`GOOGLE_RISC_CONFIG_URL`), cached, and
//! fetched again on an unknown `kid` at most once per
//! `GOOGLE_RISC_KEY_REFETCH_SECS` (10 s; a flood of made-up `kid`s costs
//! Google one request per interval); `iss`
//! equal to the discovered issuer; `aud` one of our client ids; no `exp`
//! (Google's tokens carry none). Each event is recorded by its `jti` in
//! `risc_event`, in the transaction that applies it: a replay changes
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::crypto::{refresh_token_prefix, refresh_token_sha512, Field};
use crate::google::GoogleError;
use crate::passport::webhooks;
use crate::passport::Passport;
use crate::store::gmail_token::{self, ReauthCause, RefreshIds, SignalTarget, Signalled};
use crate::store::passport_event::{self, EventKind, NewEvent};
use crate::store::risc_event::{self, Received, RevocationSignal, SignalKind};

/// The longest `jti` recorded (Google's are short hex strings).
const MAX_JTI_LEN: usize = 256;

/// Event type URIs, as Google names them.
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const OAUTH: &str = "https://schemas.openid.net/secevent/oauth/event-type/";

/// The event types this service asks Google for and acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "kebab-case")]
pub(crate) enum EventType {
    TokensRevoked,
    TokenRevoked,
    SessionsRevoked,
    AccountDisabled,
    AccountEnabled,
    AccountCredentialChangeRequired,
    Verification,
    /// Any other type: recorded, nothing else.
    Unknown,
}

impl EventType {
    /// The short name (`tokens-revoked`, …; `unknown`).
    pub(crate) fn name(self) -> &'static str {
        self.into()
    }

    /// The URI Google names it by (`tokens-revoked` and `token-revoked` are
    /// OAuth event types, the others RISC ones).
    pub(crate) fn uri(self) -> String {
        match self {
            Self::TokensRevoked | Self::TokenRevoked => format!("{OAUTH}{}", self.name()),
            _ => format!("{RISC}{}", self.name()),
        }
    }

    fn from_uri(uri: &str) -> Self {
        use strum::IntoEnumIterator;
        let name = uri
            .strip_prefix(RISC)
            .or_else(|| uri.strip_prefix(OAUTH))
            .unwrap_or_default();
        Self::iter()
            .find(|t| *t != Self::Unknown && t.name() == name)
            .unwrap_or(Self::Unknown)
    }

    /// The cause a connection is marked with, for the types that mark.
    fn signal(self) -> Option<SignalKind> {
        match self {
            Self::TokensRevoked => Some(SignalKind::TokensRevoked),
            Self::TokenRevoked => Some(SignalKind::TokenRevoked),
            Self::SessionsRevoked => Some(SignalKind::SessionsRevoked),
            Self::AccountDisabled => Some(SignalKind::AccountDisabled),
            Self::AccountCredentialChangeRequired => Some(SignalKind::CredentialChangeRequired),
            Self::AccountEnabled | Self::Verification | Self::Unknown => None,
        }
    }

    /// Every type `auth-server risc register` asks for.
    pub(crate) fn requested() -> Vec<String> {
        use strum::IntoEnumIterator;
        Self::iter()
            .filter(|t| *t != Self::Unknown)
            .map(Self::uri)
            .collect()
    }
}

/// Why a Security Event Token was refused; the RFC 8935 `err` codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RiscError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("the issuer is not Google's RISC issuer")]
    InvalidIssuer,
    #[error("the audience is not one of this service's client ids")]
    InvalidAudience,
    #[error("the signature does not verify")]
    AuthenticationFailed,
    /// Google's configuration or keys could not be fetched: not the
    /// sender's fault; it delivers again later.
    #[error("cannot fetch Google's RISC keys: {0}")]
    Unavailable(GoogleError),
    /// An unknown `kid` before the next fetch of Google's keys is due: asked
    /// again after this long (a key Google has just rotated in is then found).
    #[error("unknown key; Google's keys are fetched again in {0:?}")]
    KeysNotDue(std::time::Duration),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl RiscError {
    /// RFC 8935's `err` for a token that does not verify (answered 400);
    /// `None` for a failure of ours.
    pub(crate) fn err_code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidKey(_) => Some("invalid_key"),
            Self::InvalidIssuer => Some("invalid_issuer"),
            Self::InvalidAudience => Some("invalid_audience"),
            Self::AuthenticationFailed => Some("authentication_failed"),
            Self::Unavailable(_) | Self::KeysNotDue(_) | Self::Database(_) => None,
        }
    }
}

/// What an accepted event did.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub event: EventType,
    /// Connections marked `reauth_required`.
    pub marked: usize,
    /// The `jti` was seen before: nothing changed.
    pub replay: bool,
}

/// The issuer and its keys by `kid`, as last fetched.
#[derive(Default)]
pub(crate) struct RiscKeys {
    /// Read without waiting on a fetch: a token signed with a known key is
    /// never held up by one with an unknown key.
    cached: std::sync::RwLock<Arc<KeySet>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl RiscKeys {
    fn current(&self) -> Arc<KeySet> {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, set: KeySet) {
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
    }
}

#[derive(Default)]
struct KeySet {
    issuer: Option<String>,
    keys: HashMap<String, DecodingKey>,
    /// When the set was fetched (successfully; a failed fetch changes nothing).
    fetched_at: Option<Instant>,
}

impl KeySet {
    fn key(&self, kid: &str) -> Option<(String, DecodingKey)> {
        Some((self.issuer.clone()?, self.keys.get(kid)?.clone()))
    }
}

fn unknown_key(kid: &str) -> RiscError {
    RiscError::InvalidKey(format!("unknown key {kid:?}"))
}

/// The claims of a Security Event Token this service reads (`iss` and
/// `aud` are checked by the verifier).
#[derive(Deserialize)]
struct SetClaims {
    jti: String,
    /// When Google issued the event (Unix seconds; RFC 8417 requires it).
    iat: i64,
    events: serde_json::Map<String, Value>,
}

/// Whom an event is about.
enum Subject<'a> {
    /// A Google account (`iss-sub`).
    Account(&'a str),
    /// One refresh token, by `prefix` or `hash_base64_sha512_sha512`.
    RefreshToken { alg: &'a str, token: &'a str },
    /// Anything else (recorded by its `subject_type`).
    Other(&'a str),
}

impl<'a> Subject<'a> {
    fn of(event: &'a Value) -> Self {
        let s = &event["subject"];
        let field = |k: &str| s.get(k).and_then(Value::as_str);
        match field("subject_type") {
            Some("iss-sub" | "id_token_claims") if field("sub").is_some() => {
                Self::Account(field("sub").unwrap_or_default())
            }
            Some("oauth_token") if field("token_type") == Some("refresh_token") => {
                Self::RefreshToken {
                    alg: field("token_identifier_alg").unwrap_or_default(),
                    token: field("token").unwrap_or_default(),
                }
            }
            other => Self::Other(other.unwrap_or("none")),
        }
    }

    fn kind(&self) -> &'a str {
        match self {
            Self::Account(_) => "iss-sub",
            Self::RefreshToken { .. } => "oauth_token",
            Self::Other(k) => k,
        }
    }
}

fn count(event: EventType, outcome: &'static str) {
    metrics::counter!("passport_risc_events_total", "event" => event.name(), "outcome" => outcome)
        .increment(1);
}

/// The canonical form (standard base64, padded) of a
/// `hash_base64_sha512_sha512` value, whichever base64 alphabet it came in.
fn canonical_sha512(value: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(value.trim()).ok())?;
    (bytes.len() == 64).then(|| STANDARD.encode(bytes))
}

fn jwt_error(e: jsonwebtoken::errors::Error) -> RiscError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => RiscError::AuthenticationFailed,
        ErrorKind::InvalidIssuer => RiscError::InvalidIssuer,
        ErrorKind::InvalidAudience => RiscError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => RiscError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => RiscError::InvalidIssuer,
        _ => RiscError::InvalidRequest(format!("not a valid Security Event Token: {e}")),
    }
}

impl Passport {
    /// Verify a Security Event Token pushed by Google and apply it. A token
    /// that does not verify changes nothing.
    pub(crate) async fn receive_security_event(&self, token: &str) -> Result<Accepted, RiscError> {
        let claims = match self.verify_security_event(token).await {
            Ok(c) => c,
            Err(e) => {
                let outcome = e.err_code().unwrap_or("unavailable");
                count(EventType::Unknown, outcome);
                tracing::warn!(error = %e, "RISC: security event token refused");
                return Err(e);
            }
        };
        let mut events = claims.events.iter();
        let (Some((uri, body)), None) = (events.next(), events.next()) else {
            count(EventType::Unknown, "invalid_request");
            return Err(RiscError::InvalidRequest(
                "a Security Event Token must carry exactly one event".into(),
            ));
        };
        let event = EventType::from_uri(uri);
        let Some(issued_at) = DateTime::from_timestamp(claims.iat, 0) else {
            count(event, "invalid_request");
            return Err(RiscError::InvalidRequest("iat out of range".into()));
        };
        let accepted = self
            .apply_event(&claims.jti, issued_at, event, body)
            .await?;
        let outcome = if accepted.replay { "replay" } else { "applied" };
        count(event, outcome);
        Ok(accepted)
    }

    async fn verify_security_event(&self, token: &str) -> Result<SetClaims, RiscError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| RiscError::InvalidRequest(format!("not a JWT: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(RiscError::InvalidRequest("only RS256 is accepted".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| RiscError::InvalidKey("the token names no key (kid)".into()))?;
        let (issuer, key) = self.risc_key(&kid).await?;
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_required_spec_claims(&["iss", "aud"]);
        v.set_issuer(&[issuer]);
        v.set_audience(&self.risc_audiences());
        let data = jsonwebtoken::decode::<SetClaims>(token, &key, &v).map_err(jwt_error)?;
        let jti = &data.claims.jti;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(RiscError::InvalidRequest("bad jti".into()));
        }
        Ok(data.claims)
    }

    /// `GOOGLE_CLIENT_ID` and `GOOGLE_RISC_AUDIENCES`.
    fn risc_audiences(&self) -> Vec<String> {
        let mut auds = vec![self.settings.google_client_id.clone()];
        auds.extend(self.settings.risc.extra_audiences.iter().cloned());
        auds
    }

    /// The issuer and the key named `kid`: from the cache, or fetched (the
    /// first time, or for an unknown `kid` at most once per
    /// `GOOGLE_RISC_KEY_REFETCH_SECS` after the last successful fetch). An
    /// unknown `kid` is refused (400) only when Google's keys were fetched for
    /// this token or while it waited; before the next fetch is due it is
    /// answered "not yet" (503 with the time left: Google delivers again).
    async fn risc_key(&self, kid: &str) -> Result<(String, DecodingKey), RiscError> {
        let seen = self.risc_keys.current();
        if let Some(found) = seen.key(kid) {
            return Ok(found);
        }
        let _one_fetch = self.risc_keys.fetching.lock().await;
        let now = self.risc_keys.current();
        if now.fetched_at != seen.fetched_at {
            // A fetch finished while this token waited: Google's keys now.
            return now.key(kid).ok_or_else(|| unknown_key(kid));
        }
        let interval = self.settings.risc.key_refetch;
        if let Some(left) = now
            .fetched_at
            .and_then(|t| interval.checked_sub(t.elapsed()))
            .filter(|left| !left.is_zero())
        {
            return Err(RiscError::KeysNotDue(left));
        }
        // A failed fetch answers 503 (Google delivers again) and changes
        // nothing: only a successful fetch starts the interval.
        let (issuer, keys) = self.fetch_risc_keys().await?;
        tracing::info!(keys = keys.len(), %issuer, "RISC: fetched Google's signing keys");
        let set = KeySet {
            issuer: Some(issuer),
            keys,
            fetched_at: Some(Instant::now()),
        };
        let found = set.key(kid);
        self.risc_keys.replace(set);
        found.ok_or_else(|| unknown_key(kid))
    }

    async fn fetch_risc_keys(&self) -> Result<(String, HashMap<String, DecodingKey>), RiscError> {
        let url = &self.settings.risc.config_url;
        let config = self
            .google
            .risc_configuration(url)
            .await
            .map_err(RiscError::Unavailable)?;
        let jwks = self
            .google
            .risc_jwks(&config.jwks_uri)
            .await
            .map_err(RiscError::Unavailable)?;
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, key))
            })
            .collect();
        Ok((config.issuer, keys))
    }

    /// Record the event by its `jti` and apply it, in one transaction.
    async fn apply_event(
        &self,
        jti: &str,
        issued_at: DateTime<Utc>,
        event: EventType,
        body: &Value,
    ) -> Result<Accepted, RiscError> {
        let subject = Subject::of(body);
        let reason = body.get("reason").and_then(Value::as_str);
        let state = body.get("state").and_then(Value::as_str);
        let mut tx = self.db.begin().await?;
        let received = Received {
            jti,
            event_type: event.name(),
            subject_kind: subject.kind(),
            detail: reason.or(state),
        };
        if !risc_event::insert(&mut *tx, &received).await? {
            tracing::info!(
                jti,
                event = event.name(),
                "RISC: event received again; ignored"
            );
            return Ok(Accepted {
                event,
                marked: 0,
                replay: true,
            });
        }
        let marked = match (event.signal(), self.target(&subject)) {
            (Some(kind), Some(target)) if target_fits(kind, &target) => {
                let cause = ReauthCause::Signal(RevocationSignal::new(kind, reason));
                let marked =
                    gmail_token::mark_signalled(&mut *tx, target.as_store(issued_at), &cause)
                        .await?;
                self.announce_signal(&mut tx, &marked, &cause).await?;
                marked
            }
            _ => Vec::new(),
        };
        let n = i32::try_from(marked.len()).unwrap_or(i32::MAX);
        risc_event::set_marked(&mut *tx, jti, n).await?;
        for m in &marked {
            self.token_cache.invalidate(m.user_id);
        }
        tx.commit().await?;
        for m in &marked {
            self.token_cache.invalidate(m.user_id);
        }
        log_event(jti, event, &subject, marked.len(), state);
        Ok(Accepted {
            event,
            marked: marked.len(),
            replay: false,
        })
    }

    /// Which connections a subject names (`None`: none this service can
    /// match, e.g. a prefix without any key to MAC it).
    fn target<'a>(&self, subject: &Subject<'a>) -> Option<Target<'a>> {
        match *subject {
            Subject::Account(sub) => Some(Target::Subject(sub)),
            Subject::RefreshToken {
                alg: "prefix",
                token,
            } => {
                let macs = self.cipher.prefix_mac_candidates(token);
                (!macs.is_empty()).then_some(Target::PrefixMacs(macs))
            }
            Subject::RefreshToken {
                alg: "hash_base64_sha512_sha512",
                token,
            } => canonical_sha512(token).map(Target::Sha512),
            _ => None,
        }
    }

    /// An audit event and a `passport.reauth_required` webhook per marked
    /// connection, in the transaction that marked them.
    async fn announce_signal(
        &self,
        tx: &mut sqlx::PgConnection,
        marked: &[Signalled],
        cause: &ReauthCause,
    ) -> Result<(), sqlx::Error> {
        let provider = self.gmail();
        let why = cause.to_last_error();
        let detail = match cause {
            ReauthCause::Signal(s) => Some(s.detail.as_str()),
            _ => None,
        };
        for m in marked {
            let event = NewEvent {
                error_code: Some(cause.code()),
                detail,
                ..NewEvent::new(m.user_id, provider.name, EventKind::ReauthRequired)
            };
            passport_event::insert(&mut *tx, &event).await?;
            let facts = webhooks::Facts {
                email: m.email.as_deref(),
                cause: Some(&why),
                cause_code: Some(cause.code()),
                ..Default::default()
            };
            let kind = webhooks::Kind::ReauthRequired;
            webhooks::enqueue(tx, self, provider, kind, m.user_id, facts).await?;
        }
        Ok(())
    }

    /// Store what a `token-revoked` event can name the refresh token by,
    /// beside the sealed value just written (or read) — in the caller's
    /// transaction. Nothing when there is no refresh token.
    pub(crate) async fn write_refresh_ids(
        &self,
        db: &mut sqlx::PgConnection,
        user: Uuid,
        sealed: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        use secrecy::ExposeSecret;
        let plain = match self.cipher.open_opt(user, Field::RefreshToken, sealed) {
            Ok(Some(p)) if !p.expose_secret().is_empty() => p,
            Ok(_) => return Ok(false),
            Err(e) => {
                tracing::warn!(%user, error = %e, "cannot identify the refresh token for RISC");
                return Ok(false);
            }
        };
        let plain = plain.expose_secret();
        let sha512 = refresh_token_sha512(plain);
        let prefix_mac = self.cipher.prefix_mac(refresh_token_prefix(plain));
        let ids = RefreshIds {
            sha512: &sha512,
            prefix_mac: prefix_mac.as_deref(),
        };
        let sealed = sealed.unwrap_or_default();
        gmail_token::set_refresh_ids(db, user, sealed, &ids).await
    }

    /// Fill the identifiers of stored refresh tokens that lack them
    /// (`auth-server risc backfill`), `batch` rows at a time. Returns how
    /// many rows were filled.
    pub(crate) async fn backfill_refresh_ids(&self, batch: i64) -> Result<u64, sqlx::Error> {
        let mut filled = 0;
        let mut after = None;
        loop {
            let active = self.cipher.prefix_mac_key();
            let page = gmail_token::unidentified_page(&self.db, after, active, batch).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.user_id);
            for row in &page {
                let mut conn = self.db.acquire().await?;
                let sealed = Some(row.refresh_token.as_str());
                if self
                    .write_refresh_ids(&mut conn, row.user_id, sealed)
                    .await?
                {
                    filled += 1;
                }
            }
        }
        Ok(filled)
    }
}

/// What a subject resolves to (owning the MACs it computed).
enum Target<'a> {
    Subject(&'a str),
    Sha512(String),
    PrefixMacs(Vec<String>),
}

impl<'a> Target<'a> {
    /// The store's target; an account's spares consents made after
    /// `issued_at` (a late or redelivered event).
    fn as_store(&self, issued_at: DateTime<Utc>) -> SignalTarget<'_> {
        match self {
            Self::Subject(sub) => SignalTarget::Subject { sub, issued_at },
            Self::Sha512(h) => SignalTarget::Sha512(h),
            Self::PrefixMacs(m) => SignalTarget::PrefixMac(m),
        }
    }
}

/// `token-revoked` names one token; the other marking types an account.
fn target_fits(kind: SignalKind, target: &Target<'_>) -> bool {
    matches!(
        (kind, target),
        (
            SignalKind::TokenRevoked,
            Target::Sha512(_) | Target::PrefixMacs(_)
        )
    ) || (kind != SignalKind::TokenRevoked && matches!(target, Target::Subject(_)))
}

fn log_event(
    jti: &str,
    event: EventType,
    subject: &Subject<'_>,
    marked: usize,
    state: Option<&str>,
) {
    let subject = subject.kind();
    match event {
        EventType::Verification => {
            tracing::info!(
                jti,
                state = state.unwrap_or_default(),
                "RISC: verification event received"
            )
        }
        EventType::AccountEnabled => {
            tracing::info!(
                jti,
                subject,
                "RISC: account enabled again (recorded; no connection changes)"
            )
        }
        _ => tracing::info!(
            jti,
            event = event.name(),
            subject,
            marked,
            "RISC: event applied"
        ),
    }
}
