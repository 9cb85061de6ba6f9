//! Typed settings, read from the environment (and `.env` in development) through
//! `figment`, validated once at start. A bad or missing setting stops the start
//! with one message that names every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use figment::providers::Serialized;
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::scopes::{default_gmail_scopes, ScopeSet};

/// Every environment variable the service reads.
pub const KEYS: &[&str] = &[
    "DATABASE_URL",
    "BIND_ADDR",
    "PUBLIC_BASE_URL",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_AUTH_URL",
    "GOOGLE_TOKEN_URL",
    "GOOGLE_USERINFO_URL",
    "GOOGLE_REVOKE_URL",
    "GOOGLE_TOKENINFO_URL",
    "GOOGLE_API_BASE_URL",
    "GMAIL_PASSPORT_SCOPES",
    "INVENTORY_URL",
    "ALLOWED_RETURN_ORIGINS",
    "SESSION_JWT_SECRET",
    "SESSION_COOKIE_NAME",
    "INTERNAL_API_KEYS",
    "LOG_FORMAT",
    "GOOGLE_HTTP_TIMEOUT_SECS",
    "TOKEN_REFRESH_MARGIN_SECS",
    "REFRESH_COOLDOWN_SECS",
    "TOKEN_ENCRYPTION_KEYS",
    "ALLOW_PLAINTEXT_TOKENS",
    "RATE_LIMIT_BROWSER_IP_PER_MIN",
    "RATE_LIMIT_CONNECT_USER_PER_MIN",
    "RATE_LIMIT_TOKEN_IP_PER_MIN",
    "RATE_LIMIT_TOKEN_USER_PER_MIN",
    "SHUTDOWN_GRACE_SECS",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_BASE_MS",
    "WEBHOOK_TIMEOUT_SECS",
    "WEBHOOK_POLL_MS",
    "WEBHOOK_LEASE_SECS",
    "SWEEP_AFTER_SECS",
    "SWEEP_PER_MINUTE",
    "SWEEP_INTERVAL_SECS",
    "TRUSTED_PROXIES",
];

pub const DEFAULT_BIND_ADDR: &str = "0.0.0.0:51123";
pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
pub const DEFAULT_TOKENINFO_URL: &str = "https://oauth2.googleapis.com/tokeninfo";
pub const DEFAULT_API_BASE_URL: &str = "https://www.googleapis.com";
pub const DEFAULT_SESSION_COOKIE: &str = "access_token";
/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_JWT_SECRET_LEN: usize = 32;
/// Shortest accepted internal API key, in bytes.
pub const MIN_INTERNAL_KEY_LEN: usize = 16;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Google's endpoints (or the fake's).
#[derive(Debug, Clone)]
pub struct GoogleEndpoints {
    pub auth_url: Url,
    pub token_url: Url,
    pub userinfo_url: Url,
    pub revoke_url: Url,
    pub tokeninfo_url: Url,
    pub api_base_url: Url,
}

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
    /// Origins `return_to` may point at; always includes `PUBLIC_BASE_URL`'s.
    pub allowed_return_origins: Vec<url::Origin>,
    pub session_jwt_secret: SecretString,
    pub session_cookie_name: String,
    pub internal_api_keys: Vec<SecretString>,
    pub log_format: LogFormat,
    /// A token expiring sooner than this is refreshed before it is handed out.
    pub refresh_margin: Duration,
    /// After Google failed a refresh (5xx, timeout), answer from the recorded
    /// failure for this long instead of calling again.
    pub refresh_cooldown: Duration,
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
    /// Reverse proxies whose `X-Forwarded-For` names the client (rate limits).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Webhook delivery.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: Url,
    pub secret: SecretString,
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay; doubled each time (with jitter), capped at an hour.
    pub retry_base: Duration,
    pub timeout: Duration,
    pub poll: Duration,
    /// How long a dispatcher holds an event it is delivering.
    pub lease: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("secret", &"[redacted]")
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("lease", &self.lease)
            .finish()
    }
}

/// The background refresh sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Refresh active connections not refreshed for this long; zero: off.
    pub after: Duration,
    /// At most this many refreshes per minute.
    pub per_minute: u32,
    /// How often a sweep starts.
    pub interval: Duration,
}

/// Requests per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Connect and callback, per client IP.
    pub browser_ip_per_min: u32,
    /// Connect (page and API), per signed-in user.
    pub connect_user_per_min: u32,
    /// Token API, per client IP (skills come from few hosts).
    pub token_ip_per_min: u32,
    /// Token API, per user asked for.
    pub token_user_per_min: u32,
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
            .field("allowed_return_origins", &self.allowed_return_origins)
            .field("session_jwt_secret", &"[redacted]")
            .field("session_cookie_name", &self.session_cookie_name)
            .field(
                "internal_api_keys",
                &format!("[{} redacted]", self.internal_api_keys.len()),
            )
            .field("log_format", &self.log_format)
            .field("refresh_margin", &self.refresh_margin)
            .field("refresh_cooldown", &self.refresh_cooldown)
            .field("token_keys", &self.token_keys)
            .field("allow_plaintext_tokens", &self.allow_plaintext_tokens)
            .field("rate_limits", &self.rate_limits)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("webhooks", &self.webhooks)
            .field("sweep", &self.sweep)
            .field("trusted_proxies", &self.trusted_proxies)
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

/// The raw values, as strings, before validation.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Raw {
    database_url: Option<String>,
    bind_addr: Option<String>,
    public_base_url: Option<String>,
    google_client_id: Option<String>,
    google_client_secret: Option<String>,
    google_auth_url: Option<String>,
    google_token_url: Option<String>,
    google_userinfo_url: Option<String>,
    google_revoke_url: Option<String>,
    google_tokeninfo_url: Option<String>,
    google_api_base_url: Option<String>,
    gmail_passport_scopes: Option<String>,
    inventory_url: Option<String>,
    allowed_return_origins: Option<String>,
    session_jwt_secret: Option<String>,
    session_cookie_name: Option<String>,
    internal_api_keys: Option<String>,
    log_format: Option<String>,
    google_http_timeout_secs: Option<String>,
    token_refresh_margin_secs: Option<String>,
    refresh_cooldown_secs: Option<String>,
    token_encryption_keys: Option<String>,
    allow_plaintext_tokens: Option<String>,
    rate_limit_browser_ip_per_min: Option<String>,
    rate_limit_connect_user_per_min: Option<String>,
    rate_limit_token_ip_per_min: Option<String>,
    rate_limit_token_user_per_min: Option<String>,
    shutdown_grace_secs: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    webhook_max_attempts: Option<String>,
    webhook_retry_base_ms: Option<String>,
    webhook_timeout_secs: Option<String>,
    webhook_poll_ms: Option<String>,
    webhook_lease_secs: Option<String>,
    sweep_after_secs: Option<String>,
    sweep_per_minute: Option<String>,
    sweep_interval_secs: Option<String>,
    trusted_proxies: Option<String>,
}

impl Settings {
    /// Read the process environment (after `.env`, which the binary loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with_defaults(&BTreeMap::new())
    }

    /// Read the environment; `defaults` fill keys the environment does not set
    /// (the demo uses this for its local settings).
    pub fn from_env_with_defaults(
        defaults: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let lower: BTreeMap<String, String> = defaults
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        Self::from_layers(lower, std::env::vars())
    }

    /// Defaults, then the given environment. Values stay verbatim strings:
    /// figment's `Env` provider would parse `true`, `30` or `0123…` into
    /// booleans and numbers (and change secrets that look like numbers).
    fn from_layers<I>(defaults: BTreeMap<String, String>, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
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
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
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
    pub fn public_url(&self, path: &str) -> Url {
        let base = self.public_base_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).expect("PUBLIC_BASE_URL joined with a path is a URL")
    }

    /// Whether cookies must carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }

    pub fn client_secret(&self) -> &str {
        self.google_client_secret.expose_secret()
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

struct Checker {
    problems: Vec<String>,
}

impl Checker {
    fn required(&mut self, key: &str, v: Option<String>) -> Option<String> {
        let v = non_empty(v);
        if v.is_none() {
            self.problems.push(format!("{key} is not set"));
        }
        v
    }

    /// A whole number within `range` (`default` when unset); `unit` names it
    /// in the problem report.
    fn number(
        &mut self,
        key: &str,
        v: Option<String>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
    ) -> u64 {
        match non_empty(v) {
            None => default,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    self.problems.push(format!(
                        "{key} must be a whole number of {unit} from {} to {}",
                        range.start(),
                        range.end()
                    ));
                    default
                }
            },
        }
    }

    fn seconds(
        &mut self,
        key: &str,
        v: Option<String>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Duration {
        Duration::from_secs(self.number(key, v, default, range, "seconds"))
    }

    /// Requests per minute; 0 turns the limit off.
    fn per_minute(&mut self, key: &str, v: Option<String>, default: u32) -> u32 {
        self.number(
            key,
            v,
            default.into(),
            0..=u32::MAX.into(),
            "requests per minute (0 turns it off)",
        ) as u32
    }

    fn flag(&mut self, key: &str, v: Option<String>) -> bool {
        match non_empty(v).as_deref() {
            None | Some("false") | Some("0") | Some("no") => false,
            Some("true") | Some("1") | Some("yes") => true,
            Some(_) => {
                self.problems.push(format!("{key} must be true or false"));
                false
            }
        }
    }

    fn url(&mut self, key: &str, v: Option<String>, default: Option<&str>) -> Option<Url> {
        let v = non_empty(v).or(default.map(str::to_string));
        let Some(v) = v else {
            self.problems.push(format!("{key} is not set"));
            return None;
        };
        match Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problems
                    .push(format!("{key} must be an http(s) URL with a host"));
                None
            }
            Err(e) => {
                self.problems
                    .push(format!("{key} is not a valid URL ({e})"));
                None
            }
        }
    }
}

fn validate(raw: Raw) -> Result<Settings, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
    };

    let database_url = c.required("DATABASE_URL", raw.database_url);
    if let Some(db) = &database_url {
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            c.problems
                .push("DATABASE_URL must start with postgres:// or postgresql://".into());
        }
    }

    let bind_addr = match non_empty(raw.bind_addr)
        .as_deref()
        .unwrap_or(DEFAULT_BIND_ADDR)
        .parse()
    {
        Ok(a) => Some(a),
        Err(_) => {
            c.problems
                .push("BIND_ADDR must be an address such as 0.0.0.0:51123".into());
            None
        }
    };

    let public_base_url = c.url("PUBLIC_BASE_URL", raw.public_base_url, None);
    if let Some(u) = &public_base_url {
        if u.query().is_some() || u.fragment().is_some() {
            c.problems
                .push("PUBLIC_BASE_URL must not have a query or fragment".into());
        }
    }

    let google_client_id = c.required("GOOGLE_CLIENT_ID", raw.google_client_id);
    let google_client_secret = c.required("GOOGLE_CLIENT_SECRET", raw.google_client_secret);
    let auth_url = c.url(
        "GOOGLE_AUTH_URL",
        raw.google_auth_url,
        Some(DEFAULT_AUTH_URL),
    );
    let token_url = c.url(
        "GOOGLE_TOKEN_URL",
        raw.google_token_url,
        Some(DEFAULT_TOKEN_URL),
    );
    let userinfo_url = c.url(
        "GOOGLE_USERINFO_URL",
        raw.google_userinfo_url,
        Some(DEFAULT_USERINFO_URL),
    );
    let revoke_url = c.url(
        "GOOGLE_REVOKE_URL",
        raw.google_revoke_url,
        Some(DEFAULT_REVOKE_URL),
    );
    let tokeninfo_url = c.url(
        "GOOGLE_TOKENINFO_URL",
        raw.google_tokeninfo_url,
        Some(DEFAULT_TOKENINFO_URL),
    );
    let api_base_url = c.url(
        "GOOGLE_API_BASE_URL",
        raw.google_api_base_url,
        Some(DEFAULT_API_BASE_URL),
    );
    // The client secret and tokens travel to these: https, except to a fake
    // Google on this machine (tests, the demo).
    for (key, u) in [
        ("GOOGLE_AUTH_URL", &auth_url),
        ("GOOGLE_TOKEN_URL", &token_url),
        ("GOOGLE_USERINFO_URL", &userinfo_url),
        ("GOOGLE_REVOKE_URL", &revoke_url),
        ("GOOGLE_TOKENINFO_URL", &tokeninfo_url),
        ("GOOGLE_API_BASE_URL", &api_base_url),
    ] {
        if let Some(u) = u {
            if u.scheme() != "https" && !is_loopback(u) {
                c.problems.push(format!(
                    "{key} must use https (plain http is only allowed to this machine)"
                ));
            }
        }
    }

    let google_http_timeout = c.seconds(
        "GOOGLE_HTTP_TIMEOUT_SECS",
        raw.google_http_timeout_secs,
        10,
        1..=120,
    );
    let refresh_margin = c.seconds(
        "TOKEN_REFRESH_MARGIN_SECS",
        raw.token_refresh_margin_secs,
        300,
        0..=3000,
    );
    let shutdown_grace = c.seconds("SHUTDOWN_GRACE_SECS", raw.shutdown_grace_secs, 20, 1..=300);
    let webhooks = match non_empty(raw.webhook_url) {
        None => None,
        Some(u) => {
            let url = c.url("WEBHOOK_URL", Some(u), None);
            let secret = non_empty(raw.webhook_secret);
            match &secret {
                None => c.problems.push(
                    "WEBHOOK_SECRET is not set (needed with WEBHOOK_URL, at least 32 bytes)".into(),
                ),
                Some(s) if s.len() < 32 => c
                    .problems
                    .push("WEBHOOK_SECRET must be at least 32 bytes long".into()),
                _ => {}
            }
            let max_attempts = c.number(
                "WEBHOOK_MAX_ATTEMPTS",
                raw.webhook_max_attempts,
                12,
                1..=100,
                "attempts",
            ) as u32;
            let retry_base = Duration::from_millis(c.number(
                "WEBHOOK_RETRY_BASE_MS",
                raw.webhook_retry_base_ms,
                10_000,
                10..=3_600_000,
                "milliseconds",
            ));
            let timeout = Duration::from_secs(c.number(
                "WEBHOOK_TIMEOUT_SECS",
                raw.webhook_timeout_secs,
                10,
                1..=120,
                "seconds",
            ));
            let poll = Duration::from_millis(c.number(
                "WEBHOOK_POLL_MS",
                raw.webhook_poll_ms,
                1000,
                10..=60_000,
                "milliseconds",
            ));
            let lease = Duration::from_secs(c.number(
                "WEBHOOK_LEASE_SECS",
                raw.webhook_lease_secs,
                60,
                1..=3600,
                "seconds",
            ));
            match (url, secret) {
                (Some(url), Some(secret)) => Some(WebhookSettings {
                    url,
                    secret: SecretString::from(secret),
                    max_attempts,
                    retry_base,
                    timeout,
                    poll,
                    lease,
                }),
                _ => None,
            }
        }
    };
    let mut trusted_proxies = Vec::new();
    for item in non_empty(raw.trusted_proxies)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item.parse::<std::net::IpAddr>() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => c
                .problems
                .push(format!("TRUSTED_PROXIES: `{item}` is not an IP address")),
        }
    }
    let sweep = SweepSettings {
        after: Duration::from_secs(c.number(
            "SWEEP_AFTER_SECS",
            raw.sweep_after_secs,
            86_400,
            0..=31_536_000,
            "seconds",
        )),
        per_minute: c.number(
            "SWEEP_PER_MINUTE",
            raw.sweep_per_minute,
            60,
            1..=60_000,
            "refreshes per minute",
        ) as u32,
        interval: Duration::from_secs(c.number(
            "SWEEP_INTERVAL_SECS",
            raw.sweep_interval_secs,
            60,
            1..=86_400,
            "seconds",
        )),
    };
    let refresh_cooldown = c.seconds(
        "REFRESH_COOLDOWN_SECS",
        raw.refresh_cooldown_secs,
        30,
        0..=3600,
    );

    let gmail_scopes = match non_empty(raw.gmail_passport_scopes) {
        None => Some(default_gmail_scopes()),
        Some(s) => match ScopeSet::parse_known([s.as_str()]) {
            Ok(set) => Some(set),
            Err(e) => {
                c.problems.push(format!(
                    "GMAIL_PASSPORT_SCOPES: {e} (use short names such as calendar.events or full https://www.googleapis.com/auth/… URLs)"
                ));
                None
            }
        },
    };

    let mut allowed_return_origins = Vec::new();
    if let Some(u) = &public_base_url {
        allowed_return_origins.push(u.origin());
    }
    if let Some(list) = non_empty(raw.allowed_return_origins) {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match Url::parse(item) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && (u.path() == "/" || u.path().is_empty())
                        && u.query().is_none() =>
                {
                    if !allowed_return_origins.contains(&u.origin()) {
                        allowed_return_origins.push(u.origin());
                    }
                }
                _ => c.problems.push(format!(
                    "ALLOWED_RETURN_ORIGINS: `{item}` is not an origin such as https://ro-being.com"
                )),
            }
        }
    }

    let inventory_url = match (non_empty(raw.inventory_url), &public_base_url) {
        (Some(s), _) => c.url("INVENTORY_URL", Some(s), None),
        (None, Some(base)) => {
            let b = base.as_str().trim_end_matches('/');
            Url::parse(&format!("{b}/passport/gmail")).ok()
        }
        (None, None) => None,
    };
    if let Some(inv) = &inventory_url {
        if !allowed_return_origins.contains(&inv.origin()) {
            c.problems.push(
                "INVENTORY_URL must be on PUBLIC_BASE_URL or one of ALLOWED_RETURN_ORIGINS".into(),
            );
        }
    }

    let session_jwt_secret = c.required("SESSION_JWT_SECRET", raw.session_jwt_secret);
    if let Some(s) = &session_jwt_secret {
        if s.len() < MIN_JWT_SECRET_LEN {
            c.problems.push(format!(
                "SESSION_JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes long"
            ));
        }
    }

    let session_cookie_name =
        non_empty(raw.session_cookie_name).unwrap_or_else(|| DEFAULT_SESSION_COOKIE.to_string());
    if !session_cookie_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        c.problems
            .push("SESSION_COOKIE_NAME may only hold letters, digits, `_`, `-` and `.`".into());
    }

    let internal_api_keys: Vec<SecretString> = non_empty(raw.internal_api_keys)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| SecretString::from(k.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if internal_api_keys.is_empty() {
        c.problems
            .push("INTERNAL_API_KEYS is not set (comma-separated keys for skills)".into());
    } else if internal_api_keys
        .iter()
        .any(|k| k.expose_secret().len() < MIN_INTERNAL_KEY_LEN)
    {
        c.problems.push(format!(
            "INTERNAL_API_KEYS: every key must be at least {MIN_INTERNAL_KEY_LEN} characters long"
        ));
    }

    let log_format = match non_empty(raw.log_format).as_deref() {
        None | Some("pretty") => Some(LogFormat::Pretty),
        Some("json") => Some(LogFormat::Json),
        Some(_) => {
            c.problems
                .push("LOG_FORMAT must be `json` or `pretty`".into());
            None
        }
    };

    let allow_plaintext_tokens = c.flag("ALLOW_PLAINTEXT_TOKENS", raw.allow_plaintext_tokens);
    let token_keys = match non_empty(raw.token_encryption_keys) {
        None => Vec::new(),
        Some(s) => crate::crypto::parse_keys(&s).unwrap_or_else(|e| {
            c.problems.push(format!("TOKEN_ENCRYPTION_KEYS: {e}"));
            Vec::new()
        }),
    };
    if token_keys.is_empty()
        && !allow_plaintext_tokens
        && !c
            .problems
            .iter()
            .any(|p| p.starts_with("TOKEN_ENCRYPTION_KEYS"))
    {
        c.problems.push(
            "TOKEN_ENCRYPTION_KEYS is not set: give id:base64key pairs (32-byte AES-256 keys, e.g. `k1:$(openssl rand -base64 32)`), or set ALLOW_PLAINTEXT_TOKENS=true for the cut-over".into(),
        );
    }
    let rate_limits = RateLimits {
        browser_ip_per_min: c.per_minute(
            "RATE_LIMIT_BROWSER_IP_PER_MIN",
            raw.rate_limit_browser_ip_per_min,
            60,
        ),
        connect_user_per_min: c.per_minute(
            "RATE_LIMIT_CONNECT_USER_PER_MIN",
            raw.rate_limit_connect_user_per_min,
            20,
        ),
        token_ip_per_min: c.per_minute(
            "RATE_LIMIT_TOKEN_IP_PER_MIN",
            raw.rate_limit_token_ip_per_min,
            120_000,
        ),
        token_user_per_min: c.per_minute(
            "RATE_LIMIT_TOKEN_USER_PER_MIN",
            raw.rate_limit_token_user_per_min,
            600,
        ),
    };

    if !c.problems.is_empty() {
        return Err(ConfigError {
            problems: c.problems,
        });
    }

    // Every Option is Some here: each None above pushed a problem.
    let (Some(database_url), Some(bind_addr), Some(public_base_url), Some(google_client_id)) =
        (database_url, bind_addr, public_base_url, google_client_id)
    else {
        unreachable!("validated above")
    };
    Ok(Settings {
        database_url: SecretString::from(database_url),
        bind_addr,
        public_base_url,
        google_client_id,
        google_client_secret: SecretString::from(google_client_secret.unwrap_or_default()),
        google: GoogleEndpoints {
            auth_url: auth_url.expect("validated"),
            token_url: token_url.expect("validated"),
            userinfo_url: userinfo_url.expect("validated"),
            revoke_url: revoke_url.expect("validated"),
            tokeninfo_url: tokeninfo_url.expect("validated"),
            api_base_url: api_base_url.expect("validated"),
        },
        google_http_timeout,
        gmail_scopes: gmail_scopes.expect("validated"),
        inventory_url: inventory_url.expect("validated"),
        allowed_return_origins,
        session_jwt_secret: SecretString::from(session_jwt_secret.unwrap_or_default()),
        session_cookie_name,
        internal_api_keys,
        log_format: log_format.expect("validated"),
        refresh_margin,
        refresh_cooldown,
        token_keys,
        allow_plaintext_tokens,
        rate_limits,
        shutdown_grace,
        webhooks,
        sweep,
        trusted_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/x".into()),
            ("PUBLIC_BASE_URL", "https://auth.ro-being.com".into()),
            ("GOOGLE_CLIENT_ID", "cid".into()),
            ("GOOGLE_CLIENT_SECRET", "csecret".into()),
            ("SESSION_JWT_SECRET", "s".repeat(40)),
            ("INTERNAL_API_KEYS", "k".repeat(20)),
            ("ALLOWED_RETURN_ORIGINS", "https://ro-being.com".into()),
            (
                "INVENTORY_URL",
                "https://ro-being.com/settings/items".into(),
            ),
            (
                "TOKEN_ENCRYPTION_KEYS",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            ),
        ]
    }

    #[test]
    fn good_settings_validate_with_defaults() {
        let s = Settings::from_pairs(good()).unwrap();
        assert_eq!(s.bind_addr.to_string(), "0.0.0.0:51123");
        assert_eq!(s.gmail_scopes.len(), 7);
        assert_eq!(
            s.redirect_uri("gmail").as_str(),
            "https://auth.ro-being.com/passport/gmail/callback"
        );
        assert_eq!(s.allowed_return_origins.len(), 2);
        assert!(s.secure_cookies());
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("csecret")
                && !dbg.contains(&"s".repeat(40))
                && !dbg.contains(&"k".repeat(20))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_pairs([
            ("PUBLIC_BASE_URL", "not a url".to_string()),
            ("BIND_ADDR", "nowhere".to_string()),
            ("GMAIL_PASSPORT_SCOPES", "calendar,bogus.scope".to_string()),
            ("LOG_FORMAT", "xml".to_string()),
        ])
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "DATABASE_URL is not set",
            "BIND_ADDR",
            "PUBLIC_BASE_URL is not a valid URL",
            "GOOGLE_CLIENT_ID is not set",
            "GOOGLE_CLIENT_SECRET is not set",
            "GMAIL_PASSPORT_SCOPES: unknown scope `bogus.scope`",
            "SESSION_JWT_SECRET is not set",
            "INTERNAL_API_KEYS is not set",
            "LOG_FORMAT",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
        assert!(err.problems.len() >= 9);
    }

    #[test]
    fn scopes_override_accepts_short_names_and_urls() {
        let mut p = good();
        p.push((
            "GMAIL_PASSPORT_SCOPES",
            "gmail.send https://www.googleapis.com/auth/calendar.events".into(),
        ));
        let s = Settings::from_pairs(p).unwrap();
        assert_eq!(
            s.gmail_scopes.short_names(),
            vec!["gmail.send", "calendar.events"]
        );
    }

    #[test]
    fn inventory_url_must_be_an_allowed_origin() {
        let mut p = good();
        p.retain(|(k, _)| *k != "INVENTORY_URL");
        p.push(("INVENTORY_URL", "https://evil.example/x".into()));
        let err = Settings::from_pairs(p).unwrap_err();
        assert!(err.to_string().contains("INVENTORY_URL"));
    }

    #[test]
    fn encryption_keys_are_required_unless_plaintext_is_allowed() {
        let mut p = good();
        p.retain(|(k, _)| *k != "TOKEN_ENCRYPTION_KEYS");
        let err = Settings::from_pairs(p.clone()).unwrap_err();
        assert!(
            err.to_string().contains("TOKEN_ENCRYPTION_KEYS is not set"),
            "{err}"
        );
        p.push(("ALLOW_PLAINTEXT_TOKENS", "true".into()));
        assert!(
            Settings::from_pairs(p.clone())
                .unwrap()
                .allow_plaintext_tokens
        );
        p.push(("TOKEN_ENCRYPTION_KEYS", "k1:AAAA".into()));
        assert!(Settings::from_pairs(p)
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
    }

    #[test]
    fn environment_values_stay_verbatim_strings() {
        let mut env: Vec<(String, String)> = good()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.retain(|(k, _)| k != "INTERNAL_API_KEYS");
        env.push(("INTERNAL_API_KEYS".into(), "0123456789012345678901".into()));
        env.push(("ALLOW_PLAINTEXT_TOKENS".into(), "true".into()));
        env.push(("REFRESH_COOLDOWN_SECS".into(), "30".into()));
        env.push(("UNRELATED_VARIABLE".into(), "ignored".into()));
        let s = Settings::from_layers(BTreeMap::new(), env).unwrap();
        assert!(s.allow_plaintext_tokens);
        assert_eq!(s.refresh_cooldown, Duration::from_secs(30));
        assert_eq!(
            s.internal_api_keys[0].expose_secret(),
            "0123456789012345678901"
        );
    }

    #[test]
    fn numbers_out_of_range_are_reported_with_their_unit() {
        let mut p = good();
        p.push(("GOOGLE_HTTP_TIMEOUT_SECS", "0".into()));
        p.push(("RATE_LIMIT_TOKEN_USER_PER_MIN", "-1".into()));
        p.push(("WEBHOOK_URL", "https://ro-being.com/hooks".into()));
        p.push(("WEBHOOK_SECRET", "w".repeat(40)));
        p.push(("WEBHOOK_RETRY_BASE_MS", "5".into()));
        p.push(("SWEEP_PER_MINUTE", "lots".into()));
        let text = Settings::from_pairs(p).unwrap_err().to_string();
        for needle in [
            "GOOGLE_HTTP_TIMEOUT_SECS must be a whole number of seconds from 1 to 120",
            "RATE_LIMIT_TOKEN_USER_PER_MIN must be a whole number of requests per minute",
            "WEBHOOK_RETRY_BASE_MS must be a whole number of milliseconds from 10 to 3600000",
            "SWEEP_PER_MINUTE must be a whole number of refreshes per minute",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
    }

    #[test]
    fn google_endpoints_must_be_https_except_on_this_machine() {
        let mut p = good();
        p.push(("GOOGLE_TOKEN_URL", "http://oauth2.example.com/token".into()));
        let err = Settings::from_pairs(p.clone()).unwrap_err();
        assert!(
            err.to_string().contains("GOOGLE_TOKEN_URL must use https"),
            "{err}"
        );
        p.retain(|(k, _)| *k != "GOOGLE_TOKEN_URL");
        p.push(("GOOGLE_TOKEN_URL", "http://127.0.0.1:51124/token".into()));
        assert!(Settings::from_pairs(p).is_ok());
    }

    #[test]
    fn debug_output_redacts_the_keys() {
        let s = Settings::from_pairs(good()).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("AAECAwQF"), "{dbg}");
        assert_eq!(s.token_keys[0].id, "k1");
    }

    #[test]
    fn short_secrets_are_refused() {
        let mut p = good();
        p.retain(|(k, _)| *k != "SESSION_JWT_SECRET" && *k != "INTERNAL_API_KEYS");
        p.push(("SESSION_JWT_SECRET", "short".into()));
        p.push(("INTERNAL_API_KEYS", "abc".into()));
        let err = Settings::from_pairs(p).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }
}
