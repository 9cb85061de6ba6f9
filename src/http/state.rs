//! What every handler shares: the passport (the domain's one door), the
//! settings, and what only HTTP needs (rate limiters, the metrics handle).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::http::limits::Limiters;
use crate::http::sessions::SessionCache;
use crate::passport::Passport;

#[derive(Clone)]
pub struct AppState {
    pub passport: Arc<Passport>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) limiters: Arc<Limiters>,
    /// Sessions that verified, until their `exp`.
    pub(crate) sessions: Arc<SessionCache>,
    pub(crate) metrics: PrometheusHandle,
}

impl AppState {
    pub(crate) fn new(
        passport: Arc<Passport>,
        settings: Arc<Settings>,
        metrics: PrometheusHandle,
    ) -> Self {
        Self {
            limiters: Arc::new(Limiters::new(&settings.rate_limits)),
            sessions: Arc::new(SessionCache::new(settings.caches.session_entries)),
            settings,
            passport,
            metrics,
        }
    }
}
