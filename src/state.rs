//! Application state shared by every handler: the pool, the one HTTP client
//! (inside [`Google`]), the providers and the settings.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::config::Settings;
use crate::crypto::TokenCipher;
use crate::google::{http_client, Google};
use crate::http::limits::Limiters;
use crate::passport::cache::TokenCache;
use crate::passport::provider::Providers;
use crate::passport::token::{Cooldowns, KeyedLocks};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Shared, not cloned per request (its endpoints and secret are heap data).
    pub google: Arc<Google>,
    pub settings: Arc<Settings>,
    pub providers: Arc<Providers>,
    pub metrics: PrometheusHandle,
    /// One refresh at a time per user in this process.
    pub refresh_locks: Arc<KeyedLocks>,
    /// Recent refresh failures, answered from for a short while.
    pub refresh_cooldowns: Arc<Cooldowns>,
    /// Tokens at rest.
    pub cipher: Arc<TokenCipher>,
    pub limiters: Arc<Limiters>,
    /// Decrypted valid tokens, invalidated by LISTEN/NOTIFY.
    pub token_cache: Arc<TokenCache>,
}

impl AppState {
    pub fn new(settings: Settings, db: PgPool) -> Self {
        let http = http_client(settings.google_http_timeout);
        let google = Arc::new(Google::new(&settings, http));
        let providers = Providers::new(settings.gmail_scopes.clone());
        let cipher = TokenCipher::new(&settings.token_keys, settings.allow_plaintext_tokens);
        let limiters = Limiters::new(&settings.rate_limits);
        Self {
            db,
            google,
            providers: Arc::new(providers),
            settings: Arc::new(settings),
            metrics: metrics_handle(),
            refresh_locks: Arc::new(KeyedLocks::default()),
            refresh_cooldowns: Arc::new(Cooldowns::default()),
            cipher: Arc::new(cipher),
            limiters: Arc::new(limiters),
            token_cache: Arc::new(TokenCache::default()),
        }
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every app
/// instance in the process, e.g. in tests).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a host program): then
            // our handle still renders, just without the global macros' data.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
