//! Abuse limits: request rates (governor's GCRA) — per user for a caller
//! who proves who they are, per client IP for everyone else — the client's
//! address behind trusted proxies, and the bound on the size of request
//! headers (checked by `http::middleware::limits`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::config::{RateLimits, TrustedProxies};

/// Largest total size of request headers accepted.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

fn limiter<K: std::hash::Hash + Eq + Clone>(per_min: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_min).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// The rate limits of one process. A request counts against exactly one
/// bucket per route: its user's when it carries a session that verifies
/// (or, on the token API, a valid key), else its client IP's. Anonymous
/// traffic therefore never uses up a signed-in user's budget, whatever
/// address the two share.
pub(crate) struct Limiters {
    anonymous_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    connect_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    callback_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    token_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    token_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    forwarders: ForwardedHint,
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
            anonymous_ip: limiter(r.browser_ip_per_min),
            connect_user: limiter(r.connect_user_per_min),
            callback_user: limiter(r.connect_user_per_min),
            token_ip: limiter(r.token_ip_per_min),
            token_user: limiter(r.token_user_per_min),
            forwarders: ForwardedHint::default(),
        }
    }

    /// Connect and callback without a session that verifies, per client IP.
    pub(crate) fn anonymous_ip(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        check(&self.anonymous_ip, ip.as_ref())
    }

    /// Connect (page and API), per signed-in user.
    pub(crate) fn connect_user(&self, user: Uuid) -> Result<(), Limited> {
        check(&self.connect_user, Some(&user))
    }

    /// The callback, per signed-in user (a bucket apart from connect's).
    pub(crate) fn callback_user(&self, user: Uuid) -> Result<(), Limited> {
        check(&self.callback_user, Some(&user))
    }

    /// Token API without a valid key, per client IP.
    pub(crate) fn token_ip(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        check(&self.token_ip, ip.as_ref())
    }

    /// Token API, per user asked for.
    pub(crate) fn token_user(&self, user: Uuid) -> Result<(), Limited> {
        check(&self.token_user, Some(&user))
    }

    /// Forget keys that have not been seen for a while (called every minute).
    pub(crate) fn shrink(&self) {
        for l in [&self.anonymous_ip, &self.token_ip].into_iter().flatten() {
            l.retain_recent();
        }
        for l in [&self.connect_user, &self.callback_user, &self.token_user]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
        }
    }
}

/// The caller `who` proved to be. A request that proved nothing is
/// anonymous: it is counted by `per_ip` (its client IP's bucket), then
/// refused as `who` says, or 429 when that bucket is empty. A caller who
/// proved who they are never touches a per-IP bucket.
pub(crate) fn identified<U, E: From<Limited>>(
    who: Result<U, E>,
    per_ip: impl FnOnce() -> Result<(), Limited>,
) -> Result<U, E> {
    who.or_else(|refusal| {
        per_ip()?;
        Err(refusal)
    })
}

/// The client's address as the per-IP limits key it: see [`client_ip`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub Option<IpAddr>);

/// The client's address as far as it can be trusted, as a rate-limit key:
/// the TCP peer, or — when the peer is one of `TRUSTED_PROXIES` — the client
/// its `X-Forwarded-For` names ([`forwarded_client`]). IPv4-mapped IPv6
/// addresses count as the IPv4 address they carry; IPv6 addresses are keyed
/// by their /64 (one host usually owns the whole prefix).
pub(crate) fn client_ip(parts: &Parts, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = peer(parts)?;
    let ip = if trusted.contains(peer) {
        forwarded_client(peer, &parts.headers, trusted)
    } else {
        peer
    };
    Some(bucket(ip))
}

/// The TCP peer, IPv4-mapped addresses as IPv4.
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

/// Walk `X-Forwarded-For` from the right, starting at the (trusted) peer:
/// each trusted proxy appended the address it got the request from, so the
/// first hop that is not a trusted proxy is the client. An entry that is not
/// an address (`unknown`, a port, garbage) ends the walk at the last trusted
/// hop: what lies left of it cannot be believed. Several headers read as one
/// list, in order; entries are read as in [`client_ip`].
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .collect();
    let mut hop = peer;
    for entry in entries.iter().rev() {
        if !trusted.contains(hop) {
            break;
        }
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => hop = ip.to_canonical(),
            Err(_) => break,
        }
    }
    hop
}

/// IPv6 by its /64; IPv4 as it is.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Requests from one untrusted peer carrying `X-Forwarded-For` before the
/// service says that the peer looks like a reverse proxy missing from
/// `TRUSTED_PROXIES`.
const FORWARDED_HINT_AFTER: u32 = 50;

/// Notices a reverse proxy that `TRUSTED_PROXIES` does not name (its
/// requests all carry `X-Forwarded-For`) and says so once in the log.
#[derive(Default)]
struct ForwardedHint {
    said: AtomicBool,
    seen: Mutex<HashMap<IpAddr, u32>>,
}

impl ForwardedHint {
    fn note(&self, peer: IpAddr, trusted: &TrustedProxies) {
        if self.said.load(Ordering::Relaxed) {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= 1024 {
            seen.clear();
        }
        let count = seen.entry(peer).or_default();
        *count += 1;
        if *count >= FORWARDED_HINT_AFTER && !self.said.swap(true, Ordering::Relaxed) {
            seen.clear();
            tracing::warn!(
                %peer,
                trusted_proxies = %trusted,
                "requests from {peer} carry X-Forwarded-For, but {peer} is not in TRUSTED_PROXIES: \
                 all anonymous clients behind it share one per-IP rate limit. If {peer} is the \
                 reverse proxy in front of this service, add it to TRUSTED_PROXIES \
                 (docs/operations.md, \"Behind a reverse proxy\")"
            );
        }
    }
}

impl FromRequestParts<crate::http::state::AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &crate::http::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let trusted = &app.settings.trusted_proxies;
        if let Some(p) = peer(parts) {
            if !trusted.contains(p) && parts.headers.contains_key("x-forwarded-for") {
                app.limiters.forwarders.note(p, trusted);
            }
        }
        Ok(ClientIp(client_ip(parts, trusted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut req = axum::http::Request::builder().uri("/passport/gmail/callback");
        for f in forwarded {
            req = req.header("x-forwarded-for", *f);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        let addr: SocketAddr = peer.parse().unwrap();
        parts.extensions.insert(ConnectInfo(addr));
        parts
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list.iter().copied()).unwrap()
    }

    #[test]
    fn ipv4_mapped_peers_are_their_ipv4_address() {
        let none = trusted(&[]);
        for (peer, key) in [
            ("[::ffff:192.0.2.1]:4000", "192.0.2.1"),
            ("[::ffff:192.0.2.2]:4000", "192.0.2.2"),
            ("192.0.2.1:4000", "192.0.2.1"),
            // Real IPv6 stays IPv6, keyed by its /64.
            ("[2001:db8:1:2:3:4:5:6]:4000", "2001:db8:1:2::"),
            ("[::1]:4000", "::"),
        ] {
            assert_eq!(client_ip(&parts(peer, &[]), &none), ip(key), "{peer}");
        }
    }

    #[test]
    fn a_mapped_peer_matches_a_plain_ipv4_trusted_proxy_and_the_reverse() {
        for (list, peer) in [
            (["10.0.0.5"], "[::ffff:10.0.0.5]:80"),
            (["::ffff:10.0.0.5"], "10.0.0.5:80"),
            (["10.0.0.0/8"], "[::ffff:10.9.9.9]:80"),
        ] {
            let got = client_ip(&parts(peer, &["198.51.100.7"]), &trusted(&list));
            assert_eq!(got, ip("198.51.100.7"), "{list:?} {peer}");
        }
    }

    #[test]
    fn forwarded_entries_are_read_from_the_right_with_mapped_forms_as_ipv4() {
        let proxies = trusted(&["10.0.0.0/8", "::ffff:172.18.0.1"]);
        for (xff, key) in [
            (&["::ffff:203.0.113.9"][..], "203.0.113.9"),
            (&["198.51.100.1, ::ffff:203.0.113.9"], "203.0.113.9"),
            // Trusted hops, mapped or not, are skipped.
            (&["203.0.113.9, ::ffff:10.1.1.1, 172.18.0.1"], "203.0.113.9"),
            (&["203.0.113.9", "::ffff:172.18.0.1"], "203.0.113.9"),
            // A client cannot hide behind a made-up left-most entry.
            (&["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
            (&["2001:db8::1:2, 10.0.0.9"], "2001:db8::"),
            // An unreadable entry ends the walk at the last trusted hop.
            (&["203.0.113.9, unknown"], "10.0.0.1"),
            (&["203.0.113.9, 10.2.2.2, garbage:80"], "10.0.0.1"),
            (&["203.0.113.9, bad, 10.2.2.2"], "10.2.2.2"),
            (&[], "10.0.0.1"),
        ] {
            let got = client_ip(&parts("[::ffff:10.0.0.1]:80", xff), &proxies);
            assert_eq!(got, ip(key), "{xff:?}");
        }
    }

    #[test]
    fn forwarded_is_ignored_from_an_untrusted_peer() {
        let proxies = trusted(&["10.0.0.1"]);
        let got = client_ip(&parts("[::ffff:192.0.2.4]:80", &["203.0.113.9"]), &proxies);
        assert_eq!(got, ip("192.0.2.4"));
        let got = client_ip(&parts("192.0.2.4:80", &["203.0.113.9"]), &trusted(&[]));
        assert_eq!(got, ip("192.0.2.4"));
    }

    #[test]
    fn an_identified_caller_never_touches_the_per_ip_bucket() {
        let limits = Limiters::new(&RateLimits {
            browser_ip_per_min: 1,
            connect_user_per_min: 1,
            token_ip_per_min: 1,
            token_user_per_min: 1,
        });
        let shared = ip("192.0.2.1");
        let anonymous = || {
            identified::<Uuid, Limited>(Err(Limited(Duration::ZERO)), || {
                limits.anonymous_ip(shared)
            })
        };
        // The one anonymous request of the minute: refused as anonymous.
        assert_eq!(anonymous(), Err(Limited(Duration::ZERO)));
        // The bucket is empty now: 429, with a wait.
        assert!(anonymous().unwrap_err().0 > Duration::ZERO);
        // Users from the same address are not counted there.
        for _ in 0..3 {
            let user = Uuid::new_v4();
            let got = identified::<Uuid, Limited>(Ok(user), || limits.anonymous_ip(shared));
            assert_eq!(got, Ok(user));
            assert!(limits.connect_user(user).is_ok());
            assert!(limits.callback_user(user).is_ok());
            assert!(limits.connect_user(user).is_err());
        }
    }
}
