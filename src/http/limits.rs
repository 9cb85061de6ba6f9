//! Abuse limits: per-IP and per-user request rates (governor's GCRA), and a
//! bound on the size of request headers.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::config::RateLimits;

/// Largest total size of request headers accepted.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

fn limiter<K: std::hash::Hash + Eq + Clone>(per_min: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_min).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// The rate limiters of one process.
pub(crate) struct Limiters {
    browser_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    connect_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    token_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    token_user: Option<DefaultKeyedRateLimiter<Uuid>>,
}

/// Over a limit: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited(pub Duration);

fn check<K: std::hash::Hash + Eq + Clone>(
    l: &Option<DefaultKeyedRateLimiter<K>>,
    key: Option<&K>,
) -> Result<(), Limited> {
    match (l, key) {
        (Some(l), Some(k)) => l
            .check_key(k)
            .map_err(|not_until| Limited(not_until.wait_time_from(DefaultClock::default().now()))),
        _ => Ok(()),
    }
}

impl Limiters {
    pub(crate) fn new(r: &RateLimits) -> Self {
        Self {
            browser_ip: limiter(r.browser_ip_per_min),
            connect_user: limiter(r.connect_user_per_min),
            token_ip: limiter(r.token_ip_per_min),
            token_user: limiter(r.token_user_per_min),
        }
    }

    /// Connect and callback, per client IP.
    pub(crate) fn browser_ip(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        check(&self.browser_ip, ip.as_ref())
    }

    /// Connect, per user.
    pub(crate) fn connect_user(&self, user: Uuid) -> Result<(), Limited> {
        check(&self.connect_user, Some(&user))
    }

    /// Token API, per client IP.
    pub(crate) fn token_ip(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        check(&self.token_ip, ip.as_ref())
    }

    /// Token API, per user asked for.
    pub(crate) fn token_user(&self, user: Uuid) -> Result<(), Limited> {
        check(&self.token_user, Some(&user))
    }

    /// Forget keys that have not been seen for a while (called every minute).
    pub(crate) fn shrink(&self) {
        if let Some(l) = &self.browser_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.connect_user {
            l.retain_recent();
        }
        if let Some(l) = &self.token_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.token_user {
            l.retain_recent();
        }
    }
}

/// The TCP peer's address, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub Option<IpAddr>);

/// The client's address as far as it can be trusted: the TCP peer, or — when
/// the peer is one of `TRUSTED_PROXIES` — the right-most `X-Forwarded-For`
/// entry that is not a trusted proxy. IPv6 addresses are keyed by their /64
/// (one host usually owns the whole prefix).
pub(crate) fn client_ip(parts: &Parts, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let mut ip = peer;
    if trusted.contains(&peer) {
        let forwarded: Vec<IpAddr> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        if let Some(client) = forwarded.iter().rev().find(|a| !trusted.contains(a)) {
            ip = *client;
        }
    }
    Some(match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    })
}

impl FromRequestParts<crate::http::state::AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &crate::http::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, &app.settings.trusted_proxies)))
    }
}

/// Refuse requests whose headers are larger than [`MAX_HEADER_BYTES`].
pub(crate) async fn header_limit(req: Request, next: Next) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + req.uri().to_string().len();
    if size > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        )
            .into_response();
    }
    next.run(req).await
}
