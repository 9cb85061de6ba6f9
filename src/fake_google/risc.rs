//! The fake's RISC issuer (Cross-Account Protection), as Google runs it:
//! the configuration document, the JWKS, the stream management API
//! (`stream:update`, `stream:verify`, `GET stream`, each requiring the
//! service account's self-signed bearer JWT), and control endpoints that
//! sign an event and push it to the registered receiver, rotate the signing
//! key, and hand out the service account file.
//!
//! The keys in `risc_keys/` are throwaway public test keys of the fake only
//! (see the README there): nothing but the fake signs with them.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::FakeGoogle;

/// A signing key of the fake: its `kid`, private key and JWK modulus.
struct FakeKey {
    kid: &'static str,
    pem: &'static str,
    n: &'static str,
}

const ISSUER_KEYS: [FakeKey; 2] = [
    FakeKey {
        kid: "fake-risc-1",
        pem: include_str!("risc_keys/issuer-1.pem"),
        n: include_str!("risc_keys/issuer-1.jwk-n"),
    },
    FakeKey {
        kid: "fake-risc-2",
        pem: include_str!("risc_keys/issuer-2.pem"),
        n: include_str!("risc_keys/issuer-2.jwk-n"),
    },
];

/// Never published in the JWKS: signs tokens the receiver must refuse.
const ROGUE_KEY: FakeKey = FakeKey {
    kid: "fake-risc-rogue",
    pem: include_str!("risc_keys/rogue.pem"),
    n: include_str!("risc_keys/rogue.jwk-n"),
};

const SERVICE_ACCOUNT_KEY: FakeKey = FakeKey {
    kid: "fake-service-account-1",
    pem: include_str!("risc_keys/service-account.pem"),
    n: include_str!("risc_keys/service-account.jwk-n"),
};

/// The fake service account's address (the RISC configuration admin).
pub const SERVICE_ACCOUNT_EMAIL: &str = "risc-admin@fake-project.iam.gserviceaccount.com";

/// The audience of the RISC API's bearer JWT, as Google requires it.
const RISC_API_AUDIENCE: &str =
    "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService";

const PUSH_METHOD: &str = "https://schemas.openid.net/secevent/risc/delivery-method/push";

/// The RISC issuer's state: which keys the JWKS publishes, which one signs,
/// and the stream as `stream:update` configured it.
#[derive(Debug, Default)]
pub(super) struct RiscState {
    /// Rotated: the JWKS publishes both keys and the second signs.
    rotated: bool,
    receiver: Option<String>,
    events_requested: Vec<String>,
}

fn modulus(k: &FakeKey) -> &'static str {
    k.n.trim()
}

fn jwk(k: &FakeKey) -> Value {
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid, "n": modulus(k), "e": "AQAB"})
}

/// The fake's base URL as the caller reached it (the issuer).
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `GET /.well-known/risc-configuration`.
pub(super) async fn configuration(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    fake.lock().count("risc.configuration");
    let base = base(&headers);
    Json(json!({
        "issuer": format!("{base}/"),
        "jwks_uri": format!("{base}/risc/jwks"),
        "delivery_methods_supported": [PUSH_METHOD],
        "add_subject_endpoint": format!("{base}/v1beta/subjects:add"),
        "remove_subject_endpoint": format!("{base}/v1beta/subjects:remove"),
        "configuration_endpoint": format!("{base}/v1beta/stream:update"),
        "verification_endpoint": format!("{base}/v1beta/stream:verify"),
    }))
    .into_response()
}

/// `GET /risc/jwks`: the published issuer keys.
pub(super) async fn jwks(State(fake): State<FakeGoogle>) -> Response {
    let mut s = fake.lock();
    s.count("risc.jwks");
    if s.behaviour.risc_jwks_unavailable {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys: Vec<Value> = match s.risc.rotated {
        false => vec![jwk(&ISSUER_KEYS[0])],
        true => ISSUER_KEYS.iter().map(jwk).collect(),
    };
    Json(json!({ "keys": keys })).into_response()
}

/// How the control endpoint signs an event.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// With the issuer's signing key (the second after a rotation).
    #[default]
    Valid,
    /// With a key the JWKS never publishes, under its own `kid`.
    UnknownKey,
    /// With another key, under the signing key's `kid` (a forgery).
    Forged,
}

/// `POST /__fake/risc/push`: what to sign and where to send it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Push {
    /// `tokens-revoked`, `token-revoked`, `sessions-revoked`,
    /// `account-disabled`, `account-enabled`,
    /// `account-credential-change-required`, `verification`.
    pub event: String,
    /// The account the event is about (for account events).
    pub email: Option<String>,
    /// The refresh token a `token-revoked` names …
    pub refresh_token: Option<String>,
    /// … by `prefix` (default) or `hash_base64_sha512_sha512`.
    pub token_identifier_alg: Option<String>,
    pub reason: Option<String>,
    pub state: Option<String>,
    pub signing: Signing,
    /// Another audience than our client id.
    pub aud: Option<String>,
    /// A chosen `jti` (replays); a fresh one otherwise.
    pub jti: Option<String>,
    /// Where to push; the registered receiver otherwise.
    pub receiver: Option<String>,
    /// The `iat` claim (Unix seconds), for an event issued earlier (a late
    /// or redelivered one); now otherwise.
    pub iat: Option<i64>,
}

fn event_uri(name: &str) -> String {
    let ns = match name {
        "tokens-revoked" | "token-revoked" => "oauth",
        _ => "risc",
    };
    format!("https://schemas.openid.net/secevent/{ns}/event-type/{name}")
}

/// Google's `hash_base64_sha512_sha512`: SHA-512 twice, standard base64.
fn double_sha512(token: &str) -> String {
    use sha2::{Digest, Sha512};
    let once = Sha512::digest(token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(Sha512::digest(once))
}

impl FakeGoogle {
    fn subject(&self, p: &Push) -> Result<Value, String> {
        if let Some(token) = &p.refresh_token {
            let alg = p.token_identifier_alg.as_deref().unwrap_or("prefix");
            let id = match alg {
                "prefix" => token.chars().take(16).collect(),
                "hash_base64_sha512_sha512" => double_sha512(token),
                other => return Err(format!("unknown token_identifier_alg {other}")),
            };
            return Ok(
                json!({"subject_type": "oauth_token", "token_type": "refresh_token",
                "token_identifier_alg": alg, "token": id}),
            );
        }
        let email = p.email.as_deref().unwrap_or_default();
        let account = self
            .account(email)
            .ok_or_else(|| format!("unknown account {email:?}"))?;
        Ok(
            json!({"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": account.sub}),
        )
    }

    /// A Security Event Token for `p`, signed as `p.signing` says.
    fn sign_event(&self, p: &Push, issuer: &str) -> Result<(String, String), String> {
        let mut body = serde_json::Map::new();
        if p.event != "verification" {
            body.insert("subject".into(), self.subject(p)?);
        }
        if let Some(r) = &p.reason {
            body.insert("reason".into(), json!(r));
        }
        if let Some(s) = &p.state {
            body.insert("state".into(), json!(s));
        }
        let jti = p.jti.clone().unwrap_or_else(crate::passport::random_token);
        let aud = p
            .aud
            .clone()
            .unwrap_or_else(|| self.config.client_id.clone());
        let claims = json!({
            "iss": issuer, "aud": aud, "iat": p.iat.unwrap_or_else(|| chrono::Utc::now().timestamp()), "jti": jti,
            "events": { event_uri(&p.event): Value::Object(body) },
        });
        let active = &ISSUER_KEYS[usize::from(self.lock().risc.rotated)];
        let (kid, pem) = match p.signing {
            Signing::Valid => (active.kid, active.pem),
            Signing::UnknownKey => (ROGUE_KEY.kid, ROGUE_KEY.pem),
            Signing::Forged => (active.kid, ROGUE_KEY.pem),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        header.typ = Some("secevent+jwt".into());
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let jwt = jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())?;
        Ok((jwt, jti))
    }

    /// Sign the event `p` describes as `issuer` and push it to the receiver:
    /// its status, body and `Retry-After`, `{"status", "body", "jti",
    /// "retry_after"}`.
    pub async fn push(&self, p: &Push, issuer: &str) -> Result<Value, String> {
        let receiver = match &p.receiver {
            Some(r) => r.clone(),
            None => self
                .lock()
                .risc
                .receiver
                .clone()
                .ok_or("no receiver registered (stream:update) and none given")?,
        };
        let (jwt, jti) = self.sign_event(p, issuer)?;
        self.lock().count("risc.push");
        let resp = crate::google::http_client(std::time::Duration::from_secs(10))
            .post(&receiver)
            .header(CONTENT_TYPE, "application/secevent+jwt")
            .body(jwt)
            .send()
            .await
            .map_err(|e| format!("push to {receiver}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(json!({"status": status, "body": body, "jti": jti, "retry_after": retry_after}))
    }

    /// Publish the second issuer key and sign with it from now on.
    pub fn rotate_risc_key(&self) {
        self.lock().risc.rotated = true;
    }

    /// The service account file a RISC configuration admin downloads (its
    /// key is a public test key of the fake).
    pub fn risc_service_account(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": SERVICE_ACCOUNT_KEY.kid,
            "private_key": SERVICE_ACCOUNT_KEY.pem,
            "client_email": SERVICE_ACCOUNT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
    }

    /// The stream as registered: `(receiver, events_requested)`.
    pub fn risc_stream(&self) -> (Option<String>, Vec<String>) {
        let s = self.lock();
        (s.risc.receiver.clone(), s.risc.events_requested.clone())
    }
}

/// `POST /__fake/risc/push`: sign and push; `{"status", "body", "jti"}`.
pub(super) async fn push(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Json(p): Json<Push>,
) -> Response {
    let issuer = format!("{}/", base(&headers));
    match fake.push(&p, &issuer).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

/// `POST /__fake/risc/rotate`.
pub(super) async fn rotate(State(fake): State<FakeGoogle>) -> Response {
    fake.rotate_risc_key();
    Json(json!({"kid": ISSUER_KEYS[1].kid})).into_response()
}

/// `GET /__fake/risc/service-account`.
pub(super) async fn service_account(State(fake): State<FakeGoogle>) -> Response {
    Json(fake.risc_service_account()).into_response()
}

/// Google's RISC API error shape.
fn api_error(status: StatusCode, message: &str) -> Response {
    let code = status.as_u16();
    let name = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        _ => "PERMISSION_DENIED",
    };
    let body = json!({"error": {"code": code, "message": message, "status": name}});
    (status, Json(body)).into_response()
}

/// The RISC API accepts only the service account's self-signed JWT.
fn authorized(headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let Ok(key) = DecodingKey::from_rsa_components(modulus(&SERVICE_ACCOUNT_KEY), "AQAB") else {
        return false;
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[RISC_API_AUDIENCE]);
    v.set_issuer(&[SERVICE_ACCOUNT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &key, &v).is_ok()
}

fn unauthorized() -> Response {
    api_error(StatusCode::UNAUTHORIZED, "Unauthorized.")
}

#[derive(Deserialize)]
pub(super) struct StreamUpdate {
    delivery: Delivery,
    events_requested: Vec<String>,
}

#[derive(Deserialize)]
struct Delivery {
    delivery_method: String,
    url: String,
}

/// `POST /v1beta/stream:update`.
pub(super) async fn stream_update(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Json(u): Json<StreamUpdate>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    if u.delivery.delivery_method != PUSH_METHOD {
        return api_error(StatusCode::BAD_REQUEST, "unsupported delivery_method");
    }
    let mut s = fake.lock();
    s.count("risc.stream_update");
    s.risc.receiver = Some(u.delivery.url);
    s.risc.events_requested = u.events_requested;
    Json(json!({})).into_response()
}

/// `GET /v1beta/stream`.
pub(super) async fn stream(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let (receiver, events) = fake.risc_stream();
    Json(json!({
        "delivery": {"delivery_method": PUSH_METHOD, "url": receiver},
        "events_requested": events,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct StreamVerify {
    #[serde(default)]
    state: String,
}

/// `POST /v1beta/stream:verify`: push a `verification` event with the state.
pub(super) async fn stream_verify(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    Json(v): Json<StreamVerify>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    fake.lock().count("risc.stream_verify");
    let p = Push {
        event: "verification".into(),
        state: Some(v.state),
        ..Push::default()
    };
    let issuer = format!("{}/", base(&headers));
    match fake.push(&p, &issuer).await {
        Ok(_) => Json(json!({})).into_response(),
        Err(e) => api_error(StatusCode::BAD_REQUEST, &e),
    }
}
