//! The domain: the Gmail Passport's use cases behind one door, [`Passport`].
//!
//! Nothing here knows about HTTP servers: no axum, no tower, no `http`
//! module. SQL lives in `crate::store`, calls to Google in `crate::google`,
//! webhook deliveries in `crate::notify`; this module decides.

mod breaker;
pub mod cache;
pub(crate) mod diagnosis;
pub(crate) mod disconnect;
pub(crate) mod flash;
pub mod flow;
pub(crate) mod keys;
pub(crate) mod ledger;
mod locks;
pub(crate) mod prior_grant;
pub(crate) mod provider;
pub(crate) mod report;
pub(crate) mod retention;
pub mod return_to;
pub(crate) mod risc;
pub(crate) mod risc_register;
pub(crate) mod scope_truth;
pub(crate) mod status;
pub(crate) mod sweep;
pub(crate) mod token;
pub(crate) mod webhooks;

use std::sync::Arc;

use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use url::Url;

use crate::config::Settings;
use crate::crypto::TokenCipher;
use crate::google::{http_client, Google};
use crate::notify::WebhookSender;
use crate::store::token_reads::{BatchedReads, ReadBatching};
use breaker::Breaker;
use cache::TokenCache;
use locks::{KeyedLocks, Throttle};
use provider::{Provider, Providers};

/// Most rows one batched read of the token API asks for.
const READ_BATCH_ROWS: usize = 128;

/// The Gmail Passport service: everything the use cases need, owned once.
///
/// Built by the composition root (the `startup` module) and shared behind an
/// `Arc`; every use case is a method (see the submodules' `impl Passport`).
pub struct Passport {
    pub(crate) db: PgPool,
    /// The token API's reads of rows not cached, batched ([`token_reads`]).
    ///
    /// [`token_reads`]: crate::store::token_reads
    pub(crate) token_reads: BatchedReads,
    pub(crate) google: Google,
    pub(crate) webhook_sender: WebhookSender,
    pub(crate) settings: Arc<Settings>,
    pub(crate) providers: Providers,
    pub(crate) cipher: TokenCipher,
    /// Decrypted valid tokens, invalidated by LISTEN/NOTIFY.
    pub(crate) token_cache: Arc<TokenCache>,
    /// One refresh at a time per user in this process.
    pub(crate) refresh_locks: KeyedLocks,
    /// Stops refreshes for a while when Google keeps failing.
    pub(crate) google_breaker: Breaker,
    /// One error line a minute while Google refuses our client.
    pub(crate) misconfigured_log: Throttle,
    /// Signs the item page's result flash ([`flash`]).
    pub(crate) flash_key: crate::crypto::Authenticator,
    /// Tokens handed out, counted per caller until written ([`ledger`]).
    pub(crate) fetch_ledger: Arc<ledger::FetchLedger>,
    /// Google's RISC issuer and signing keys, as last fetched ([`risc`]).
    pub(crate) risc_keys: risc::RiscKeys,
}

/// Batched reads at once: `DB_READ_BATCHES`, but never more than half the
/// pool (at least one), so that a burst of cache misses cannot hold every
/// connection the rest of the service needs.
fn read_batches(configured: u32, pool: u32) -> usize {
    let cap = (pool / 2).max(1);
    if configured > cap {
        tracing::warn!(
            configured,
            used = cap,
            "DB_READ_BATCHES is more than half of DB_MAX_CONNECTIONS; lowered"
        );
    }
    configured.min(cap) as usize
}

impl Passport {
    pub(crate) fn new(settings: Arc<Settings>, db: PgPool) -> Self {
        let http = http_client(settings.google_http_timeout);
        let db_settings = settings.database;
        let batching = ReadBatching {
            concurrent: read_batches(db_settings.read_batches, db_settings.max_connections),
            max_rows: READ_BATCH_ROWS,
            wait: db_settings.acquire_timeout + db_settings.statement_timeout,
        };
        Self {
            token_reads: BatchedReads::new(db.clone(), batching),
            google: Google::new(&settings, http.clone()),
            webhook_sender: WebhookSender::new(http),
            providers: Providers::new(settings.gmail_scopes.clone()),
            cipher: TokenCipher::new(&settings.token_keys, settings.allow_plaintext_tokens),
            token_cache: Arc::new(TokenCache::new(settings.caches.token_entries)),
            refresh_locks: KeyedLocks::default(),
            google_breaker: Breaker::new(
                settings.google_calls.breaker_failures,
                settings.google_calls.breaker_open,
            ),
            misconfigured_log: Throttle::default(),
            flash_key: flash::key(settings.session_jwt_secret.expose_secret().as_bytes()),
            fetch_ledger: Arc::new(ledger::FetchLedger::new(settings.ledger.max_keys)),
            risc_keys: risc::RiscKeys::default(),
            settings,
            db,
        }
    }

    /// The database pool (for the composition root's lifecycle).
    pub(crate) fn db(&self) -> &PgPool {
        &self.db
    }

    /// The provider named in a URL, if this service runs one by that name.
    pub(crate) fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    pub(crate) fn gmail(&self) -> &Provider {
        self.providers.gmail()
    }

    /// Where a user presses 재인증 for `provider` (the one place this URL is made).
    pub(crate) fn reauth_url(&self, provider: &Provider) -> Url {
        self.settings
            .public_url(&format!("/passport/{}/connect", provider.name))
    }

    /// Is the database reachable and are all migrations applied?
    pub(crate) async fn ready(&self) -> bool {
        crate::store::ready(&self.db).await
    }

    /// Delete expired consent attempts; returns how many.
    pub(crate) async fn purge_expired_attempts(&self) -> Result<u64, sqlx::Error> {
        crate::store::oauth_state::purge_expired(&self.db).await
    }

    /// Keep the token cache in step with `gmail_token` until the task is dropped.
    pub(crate) async fn listen_for_changes(&self) {
        cache::listen(self.db.clone(), self.token_cache.clone()).await
    }
}

/// 32 random bytes, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a value, as stored for `state` and the browser nonce.
pub(crate) fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Does `s` look like a value made by [`random_token`]?
pub(crate) fn is_token_shaped(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod read_batch_tests {
    #[test]
    fn batches_use_at_most_half_the_pool() {
        assert_eq!(super::read_batches(4, 20), 4);
        assert_eq!(super::read_batches(64, 20), 10);
        assert_eq!(super::read_batches(4, 4), 2);
        assert_eq!(super::read_batches(4, 1), 1);
    }
}
