//! `auth-server risc register`: register this service's receiver with
//! Google's RISC API (`stream:update` with the receiver URL and the event
//! types, then `stream:verify`), authorised by a self-signed JWT of a
//! service account holding the RISC Configuration Admin role.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::google::GoogleError;
use crate::passport::risc::EventType;
use crate::passport::Passport;

/// The audience Google requires of the RISC API's bearer JWT.
const RISC_API_AUDIENCE: &str =
    "https://risc.googleapis.com/google.identity.risc.v1beta.RiscManagementService";
const PUSH_METHOD: &str = "https://schemas.openid.net/secevent/risc/delivery-method/push";

/// The fields of a service account key file this command reads.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: SecretString,
    private_key_id: Option<String>,
}

/// What was registered.
#[derive(Debug)]
pub(crate) struct Registered {
    pub service_account: String,
    pub receiver: Url,
    pub events: Vec<String>,
    /// The `state` of the verification event Google was asked to send.
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("the service account file is not usable: {0}")]
    ServiceAccount(String),
    #[error("Google refused {step}: {}", describe(.source))]
    Google {
        step: &'static str,
        source: GoogleError,
    },
}

fn describe(e: &GoogleError) -> String {
    match e {
        GoogleError::Rejected {
            code,
            description: Some(d),
            ..
        } => format!("{code}: {d}"),
        other => other.to_string(),
    }
}

/// The self-signed bearer JWT (valid for an hour), as Google documents it.
fn bearer(sa: &ServiceAccount) -> Result<String, RegisterError> {
    let key = EncodingKey::from_rsa_pem(sa.private_key.expose_secret().as_bytes())
        .map_err(|e| RegisterError::ServiceAccount(format!("private_key: {e}")))?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = sa.private_key_id.clone();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": sa.client_email, "sub": sa.client_email, "aud": RISC_API_AUDIENCE,
        "iat": now, "exp": now + 3600,
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| RegisterError::ServiceAccount(format!("cannot sign: {e}")))
}

impl Passport {
    /// Register `receiver` (default: `PUBLIC_BASE_URL` + `/google/risc`) for
    /// every event type this service handles, then ask Google to send a
    /// verification event.
    pub(crate) async fn register_risc_stream(
        &self,
        service_account_json: &str,
        receiver: Option<Url>,
    ) -> Result<Registered, RegisterError> {
        let sa: ServiceAccount = serde_json::from_str(service_account_json)
            .map_err(|e| RegisterError::ServiceAccount(e.to_string()))?;
        let token = bearer(&sa)?;
        let receiver = receiver.unwrap_or_else(|| self.settings.public_url("/google/risc"));
        let events = EventType::requested();
        let api = &self.settings.risc.api_url;
        let update = serde_json::json!({
            "delivery": {"delivery_method": PUSH_METHOD, "url": receiver.as_str()},
            "events_requested": events,
        });
        let google = |step| move |source| RegisterError::Google { step, source };
        self.google
            .risc_stream(api, "update", &token, &update)
            .await
            .map_err(google("stream:update"))?;
        let state = format!(
            "auth-server risc register {}",
            chrono::Utc::now().to_rfc3339()
        );
        let verify = serde_json::json!({ "state": state });
        self.google
            .risc_stream(api, "verify", &token, &verify)
            .await
            .map_err(google("stream:verify"))?;
        Ok(Registered {
            service_account: sa.client_email,
            receiver,
            events,
            state,
        })
    }
}
