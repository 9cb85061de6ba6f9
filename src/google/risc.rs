//! Google's revocation signals (RISC, Cross-Account Protection): the
//! configuration document, its JWKS and the stream management API.

use serde::Deserialize;
use url::Url;

use super::{describe_reqwest, error_from_response, Google, GoogleError};

/// What the RISC configuration document says (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RiscConfiguration {
    pub issuer: String,
    pub jwks_uri: Url,
}

impl Google {
    /// `GET` the RISC configuration document (`GOOGLE_RISC_CONFIG_URL`).
    pub(crate) async fn risc_configuration(
        &self,
        url: &Url,
    ) -> Result<RiscConfiguration, GoogleError> {
        self.get_json(url).await
    }

    /// `GET` the issuer's signing keys.
    pub(crate) async fn risc_jwks(
        &self,
        jwks_uri: &Url,
    ) -> Result<jsonwebtoken::jwk::JwkSet, GoogleError> {
        self.get_json(jwks_uri).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<T, GoogleError> {
        let _turn = self.turn().await;
        let resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        resp.json()
            .await
            .map_err(|e| GoogleError::Protocol(format!("{url}: {e}")))
    }

    /// `POST {api}/v1beta/stream:<verb>` with the service account's bearer
    /// JWT (`update` with the stream configuration, `verify` with a state).
    pub(crate) async fn risc_stream(
        &self,
        api: &Url,
        verb: &str,
        bearer: &str,
        body: &serde_json::Value,
    ) -> Result<(), GoogleError> {
        let base = api.as_str().trim_end_matches('/');
        let url = format!("{base}/v1beta/stream:{verb}");
        let resp = self
            .http
            .post(url)
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(error_from_response(resp).await)
    }
}
