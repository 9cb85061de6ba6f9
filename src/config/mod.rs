//! Typed settings, read from the environment (and `.env` in development) through
//! `figment`, validated once at start. A bad or missing setting stops the start
//! with one message that names every problem at once.
//!
//! Each section has its own file, which declares its keys once (`keys!`) and
//! checks them in its `check`. The keys the service reads are the sections'
//! keys together (`SECTIONS`). Problems come section by section, each section's
//! in the order it declares its keys.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use figment::providers::Serialized;
use figment::Figment;
use secrecy::SecretString;
use url::Url;

use crate::scopes::ScopeSet;

/// Declares a section's keys: a `&str` constant per key, holding the key's
/// own name, and `KEYS`, all of them in order. A key declared but never read
/// is an unused constant, which the build refuses.
macro_rules! keys {
    ($($key:ident),+ $(,)?) => {
        $(const $key: &str = stringify!($key);)+
        /// This section's keys, in the order they are checked.
        pub(super) const KEYS: &[&str] = &[$($key),+];
    };
}

mod caches;
mod check;
mod database;
mod google;
mod google_calls;
mod http;
mod ledger;
mod limits;
mod login;
mod origins;
mod proxies;
mod retention;
mod risc;
mod secrets;
mod security;
mod server;
mod session;
mod sweep;
#[cfg(test)]
mod tests;
mod tokens;
mod webhooks;

pub use caches::CacheSettings;
pub use database::PoolSettings;
pub(crate) use google::GoogleEndpoints;
pub(crate) use google_calls::GoogleCalls;
pub(crate) use http::HttpSettings;
pub(crate) use ledger::LedgerSettings;
pub(crate) use limits::RateLimits;
pub use login::LoginSettings;
pub use proxies::TrustedProxies;
pub(crate) use retention::RetentionSettings;
pub use risc::RiscSettings;
pub(crate) use security::is_key_name;
pub(crate) use server::LogFormat;
pub use session::SessionPolicy;
pub(crate) use sweep::SweepSettings;
pub(crate) use webhooks::WebhookSettings;

use check::Checker;

/// Every environment variable the service reads, section by section.
const SECTIONS: [&[&str]; 17] = [
    server::KEYS,
    origins::KEYS,
    login::KEYS,
    google::KEYS,
    google_calls::KEYS,
    tokens::KEYS,
    caches::KEYS,
    security::KEYS,
    session::KEYS,
    limits::KEYS,
    webhooks::KEYS,
    sweep::KEYS,
    retention::KEYS,
    ledger::KEYS,
    database::KEYS,
    http::KEYS,
    risc::KEYS,
];

/// Whether the service reads the environment variable `name`.
fn is_key(name: &str) -> bool {
    SECTIONS.iter().any(|keys| keys.contains(&name))
}

/// The raw values by key (upper case), as strings, before validation.
type Raw = BTreeMap<String, String>;

/// The validated settings. Secrets are `SecretString`: their `Debug` is redacted.
#[derive(Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub bind_addr: SocketAddr,
    pub public_base_url: Url,
    pub google_client_id: String,
    pub google_client_secret: SecretString,
    pub google: GoogleEndpoints,
    pub google_http_timeout: Duration,
    pub gmail_scopes: ScopeSet,
    pub inventory_url: Url,
    /// ro-being's sign-in page and its return parameter (`LOGIN_URL`,
    /// `LOGIN_RETURN_PARAM`).
    pub login: LoginSettings,
    /// Origins `return_to` may point at; always includes `PUBLIC_BASE_URL`'s.
    pub allowed_return_origins: Vec<url::Origin>,
    pub session_jwt_secret: SecretString,
    pub session_cookie_name: String,
    /// What a session must claim besides its signature (`aud`, `iss`, lifetime).
    pub session_policy: SessionPolicy,
    pub internal_api_keys: Vec<SecretString>,
    /// The name of each of `internal_api_keys`, in the same order (from
    /// `name:key`, or `key-<fingerprint>`): the caller in logs, metrics and
    /// the fetch ledger.
    pub internal_key_names: Vec<std::sync::Arc<str>>,
    pub log_format: LogFormat,
    /// A token expiring sooner than this is refreshed before it is handed out.
    pub refresh_margin: Duration,
    /// After Google failed a refresh (5xx, timeout), answer from the recorded
    /// failure for this long instead of calling again.
    /// The cap on concurrent Google calls and the refresh circuit breaker.
    pub google_calls: GoogleCalls,
    /// The bounds of the token cache and the session cache.
    pub caches: CacheSettings,
    /// Keys for tokens at rest; the first seals new values.
    pub token_keys: Vec<crate::crypto::KeySpec>,
    /// Keep writing tokens in plaintext (cut-over while old readers remain).
    pub allow_plaintext_tokens: bool,
    pub rate_limits: RateLimits,
    /// On SIGTERM, how long in-flight requests may still run.
    pub shutdown_grace: Duration,
    /// Where state changes are announced; `None`: webhooks off.
    pub webhooks: Option<WebhookSettings>,
    pub sweep: SweepSettings,
    pub retention: RetentionSettings,
    /// The fetch ledger's flush interval and memory cap.
    pub ledger: LedgerSettings,
    /// The database pool: connections, acquire, statement and lock timeouts.
    pub database: PoolSettings,
    /// Header-read timeout, request timeout, connection cap.
    pub http: HttpSettings,
    /// Reverse proxies whose `X-Forwarded-For` names the client (rate limits).
    pub trusted_proxies: TrustedProxies,
    /// Google's revocation signals (RISC): configuration document, API,
    /// accepted audiences.
    pub risc: RiscSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &"[redacted]")
            .field("bind_addr", &self.bind_addr)
            .field("public_base_url", &self.public_base_url.as_str())
            .field("google_client_id", &self.google_client_id)
            .field("google_client_secret", &"[redacted]")
            .field("google", &self.google)
            .field("gmail_scopes", &self.gmail_scopes)
            .field("inventory_url", &self.inventory_url.as_str())
            .field("login", &self.login)
            .field("allowed_return_origins", &self.allowed_return_origins)
            .field("session_jwt_secret", &"[redacted]")
            .field("session_cookie_name", &self.session_cookie_name)
            .field("session_policy", &self.session_policy)
            .field(
                "internal_api_keys",
                &format!("[{} redacted]", self.internal_api_keys.len()),
            )
            .field("internal_key_names", &self.internal_key_names)
            .field("log_format", &self.log_format)
            .field("refresh_margin", &self.refresh_margin)
            .field("google_calls", &self.google_calls)
            .field("caches", &self.caches)
            .field("token_keys", &self.token_keys)
            .field("allow_plaintext_tokens", &self.allow_plaintext_tokens)
            .field("rate_limits", &self.rate_limits)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("webhooks", &self.webhooks)
            .field("sweep", &self.sweep)
            .field("retention", &self.retention)
            .field("ledger", &self.ledger)
            .field("database", &self.database)
            .field("http", &self.http)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("risc", &self.risc)
            .finish()
    }
}

/// Everything wrong with the settings, each problem on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the settings have {} problem(s); fix them in the environment or .env (see .env.example):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Read the process environment (after `.env`, which the binary loads).
    pub(crate) fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with_defaults(&BTreeMap::new())
    }

    /// Read the environment; `defaults` fill keys the environment does not set
    /// (the demo uses this for its local settings).
    pub(crate) fn from_env_with_defaults(
        defaults: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let upper: Raw = defaults
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect();
        Self::from_layers(upper, std::env::vars())
    }

    /// Defaults, then the given environment. Values stay verbatim strings:
    /// figment's `Env` provider would parse `true`, `30` or `0123…` into
    /// booleans and numbers (and change secrets that look like numbers).
    fn from_layers<I>(defaults: Raw, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: Raw = env.into_iter().filter(|(k, _)| is_key(k)).collect();
        let figment = Figment::new()
            .merge(Serialized::defaults(defaults))
            .merge(Serialized::defaults(env));
        Self::from_figment(figment)
    }

    /// Build from explicit `KEY=value` pairs only (tests, tools). The process
    /// environment is not read.
    pub fn from_pairs<'a, I>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (&'a str, String)>,
    {
        let map: Raw = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        Self::from_figment(Figment::from(Serialized::defaults(map)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: Raw = figment.extract().map_err(|e| ConfigError {
            problems: e.into_iter().map(|e| e.to_string()).collect(),
        })?;
        validate(raw)
    }

    /// The exact redirect URI registered at Google for a provider.
    pub fn redirect_uri(&self, provider: &str) -> Url {
        self.public_url(&format!("/passport/{provider}/callback"))
    }

    /// An absolute URL on this service.
    pub(crate) fn public_url(&self, path: &str) -> Url {
        let base = self.public_base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).expect("PUBLIC_BASE_URL joined with a path is a URL")
    }

    /// Whether cookies must carry `Secure`.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }
}

/// Every section checked, every problem collected; then the settings.
fn validate(raw: Raw) -> Result<Settings, ConfigError> {
    let mut c = Checker::new(raw);
    // In the order of `SECTIONS`.
    let server = server::check(&mut c);
    let origins = origins::check(&mut c);
    let login = login::check(&mut c);
    let google = google::check(&mut c);
    let google_calls = google_calls::check(&mut c);
    let tokens = tokens::check(&mut c);
    let caches = caches::check(&mut c);
    let security = security::check(&mut c);
    let session_policy = session::check(&mut c);
    let rate_limits = limits::check(&mut c);
    let webhooks = webhooks::check(&mut c);
    let sweep = sweep::check(&mut c);
    let retention = retention::check(&mut c);
    let ledger = ledger::check(&mut c);
    let database = database::check(&mut c);
    let http = http::check(&mut c);
    let risc = risc::check(&mut c);
    c.finish()?;

    let (Some(server), Some(origins), Some(google), Some(security), Some(risc)) =
        (server, origins, google, security, risc)
    else {
        unreachable!("a section that gave no value reported a problem")
    };
    Ok(Settings {
        database_url: server.database_url,
        bind_addr: server.bind_addr,
        public_base_url: origins.public_base_url,
        google_client_id: google.client_id,
        google_client_secret: google.client_secret,
        google: google.endpoints,
        google_http_timeout: google.http_timeout,
        gmail_scopes: google.scopes,
        inventory_url: origins.inventory_url,
        login,
        allowed_return_origins: origins.allowed_return_origins,
        session_jwt_secret: security.session_jwt_secret,
        session_cookie_name: security.session_cookie_name,
        session_policy,
        internal_api_keys: security.internal_api_keys,
        internal_key_names: security.internal_key_names,
        log_format: server.log_format,
        refresh_margin: tokens.refresh_margin,
        google_calls,
        caches,
        token_keys: tokens.token_keys,
        allow_plaintext_tokens: tokens.allow_plaintext_tokens,
        rate_limits,
        shutdown_grace: server.shutdown_grace,
        webhooks,
        sweep,
        retention,
        ledger,
        database,
        http,
        trusted_proxies: security.trusted_proxies,
        risc,
    })
}
