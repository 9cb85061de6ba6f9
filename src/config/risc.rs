//! Google's revocation signals (RISC): where the issuer's configuration
//! document is, where the stream management API is, and which client ids
//! (besides `GOOGLE_CLIENT_ID`) a Security Event Token may be addressed to.

use url::Url;

use super::Checker;

keys! {
    GOOGLE_RISC_CONFIG_URL,
    GOOGLE_RISC_API_URL,
    GOOGLE_RISC_AUDIENCES,
    GOOGLE_RISC_KEY_REFETCH_SECS,
}

const DEFAULT_CONFIG_URL: &str = "https://accounts.google.com/.well-known/risc-configuration";
const DEFAULT_API_URL: &str = "https://risc.googleapis.com";

/// The RISC receiver's and `auth-server risc register`'s settings.
#[derive(Debug, Clone)]
pub struct RiscSettings {
    /// The issuer's configuration document (`issuer`, `jwks_uri`).
    pub config_url: Url,
    /// The RISC API (`/v1beta/stream:update`, `stream:verify`).
    pub api_url: Url,
    /// Other OAuth client ids of the same Cloud project whose events this
    /// service accepts (`GOOGLE_CLIENT_ID` always).
    pub extra_audiences: Vec<String>,
    /// An unknown `kid` makes the keys be fetched again at most this often.
    pub key_refetch: std::time::Duration,
}

pub(super) fn check(c: &mut Checker) -> Option<RiscSettings> {
    let config_url = super::google::endpoint(c, GOOGLE_RISC_CONFIG_URL, DEFAULT_CONFIG_URL);
    let api_url = super::google::endpoint(c, GOOGLE_RISC_API_URL, DEFAULT_API_URL);
    let extra_audiences = c.list(GOOGLE_RISC_AUDIENCES);
    let key_refetch = c.seconds(GOOGLE_RISC_KEY_REFETCH_SECS, 10, 1..=3600);
    Some(RiscSettings {
        config_url: config_url?,
        api_url: api_url?,
        extra_audiences,
        key_refetch,
    })
}
