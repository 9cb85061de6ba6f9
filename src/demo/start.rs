//! How the demo starts: which address it listens on (`--bind` >
//! `BIND_ADDR` > 127.0.0.1:51123), what it says when a port is taken, and the
//! banner it prints on stdout (for the person who started it: the address,
//! the internal API key and a `curl` for the token API; logs go to stderr).

use std::fmt;
use std::net::SocketAddr;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::config::Settings;

/// Where the demo listens when neither `--bind` nor `BIND_ADDR` says.
pub const DEFAULT_BIND: &str = "127.0.0.1:51123";

/// Which setting chose the demo's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindSource {
    Flag,
    Env,
    /// `BIND_ADDR` named an address beyond this machine (`.env.example` says
    /// 0.0.0.0 for `serve`): the demo, which signs anyone in, keeps its port
    /// but listens on 127.0.0.1; only `--bind` opens it wider.
    EnvPortOnLoopback,
    Default,
}

impl fmt::Display for BindSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--bind",
            Self::Env => "BIND_ADDR",
            Self::EnvPortOnLoopback => {
                "BIND_ADDR's port, on 127.0.0.1 (the demo signs anyone in: only --bind makes it listen beyond this machine)"
            }
            Self::Default => "the demo's default",
        })
    }
}

/// The address to listen on: the flag, else `BIND_ADDR` (which must parse;
/// a non-loopback one keeps only its port), else [`DEFAULT_BIND`].
pub(crate) fn resolve_bind(
    flag: Option<SocketAddr>,
    env: Option<&str>,
) -> anyhow::Result<(SocketAddr, BindSource)> {
    if let Some(addr) = flag {
        return Ok((addr, BindSource::Flag));
    }
    match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map(env_on_loopback).map_err(|_| {
            anyhow::anyhow!(
                "BIND_ADDR=`{}` is not an address like 127.0.0.1:51123; fix it, or override it with `--bind`",
                v.escape_debug()
            )
        }),
        None => Ok((
            DEFAULT_BIND.parse().expect("the default parses"),
            BindSource::Default,
        )),
    }
}

fn env_on_loopback(addr: SocketAddr) -> (SocketAddr, BindSource) {
    if addr.ip().is_loopback() {
        (addr, BindSource::Env)
    } else {
        let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
        (local, BindSource::EnvPortOnLoopback)
    }
}

/// What a listener is for, to say how to move it elsewhere.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Service(BindSource),
    FakeGoogle,
}

/// Bind `addr`; a taken address fails with a message that names it, says it
/// is taken and how to choose another.
pub(crate) async fn listen(addr: SocketAddr, role: Role) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let other = SocketAddr::new(addr.ip(), addr.port().wrapping_add(10).max(1024));
        let (what, how) = match role {
            Role::Service(source) => (
                format!("the demo (address from {source})"),
                format!("`auth-server demo --bind {other}` or BIND_ADDR={other}"),
            ),
            Role::FakeGoogle => (
                "the fake Google".to_string(),
                format!("`auth-server demo --fake-bind {other}`"),
            ),
        };
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr} for {what}: the address is already in use (another program, \
                 perhaps an earlier demo, holds it); stop it or choose another address: {how}"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr} for {what}: {e}; choose another address: {how}")
        }
    })
}

/// The address a browser on this machine reaches a listener at (never
/// 0.0.0.0).
pub(crate) fn reachable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Where the demo's internal API key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// Made for this run: printed, it is the demo's own.
    Generated,
    /// The operator's `INTERNAL_API_KEYS` (environment or `.env`): never
    /// printed, the `curl` reads it from the shell.
    Operator,
}

/// The key as the banner shows it.
pub(crate) enum ShownKey {
    Generated(String),
    Operator,
}

impl KeySource {
    /// Read before the demo's settings are made (which fill the gap).
    pub(crate) fn from_env() -> Self {
        match std::env::var("INTERNAL_API_KEYS") {
            Ok(v) if !v.trim().is_empty() => Self::Operator,
            _ => Self::Generated,
        }
    }

    pub(crate) fn shown(self, settings: &Settings) -> ShownKey {
        match (self, settings.internal_api_keys.first()) {
            (Self::Generated, Some(k)) => ShownKey::Generated(k.expose_secret().to_string()),
            _ => ShownKey::Operator,
        }
    }
}

/// What the demo prints on stdout once it is ready.
pub(crate) struct Banner {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    pub(crate) source: BindSource,
    pub(crate) fake_base: String,
    pub(crate) database: String,
    pub(crate) key: ShownKey,
}

impl Banner {
    pub(crate) fn text(&self) -> String {
        let base = self.base.trim_end_matches('/');
        let user = super::assistant::skill_user();
        let body = super::assistant::token_request_body(user);
        let (key_line, bearer) = match &self.key {
            ShownKey::Generated(k) => (
                format!("  Internal API key (made for this run; set INTERNAL_API_KEYS to choose it): {k}"),
                k.clone(),
            ),
            ShownKey::Operator => (
                "  Internal API key: the first of your INTERNAL_API_KEYS (not printed; the curl reads it \
                 from the shell: export it, or `set -a; . ./.env; set +a`)"
                    .to_string(),
                // The first entry, without its `name:` if it has one.
                "$(k=${INTERNAL_API_KEYS%%,*}; echo ${k#*:})".to_string(),
            ),
        };
        let exposed = if self.addr.ip().is_loopback() {
            String::new()
        } else {
            format!(
                "  Careful: {} is not a loopback address: other machines may reach it, and the demo \
                 signs anyone in; `--bind 127.0.0.1:{}` keeps it on this one.\n",
                self.addr,
                self.addr.port()
            )
        };
        format!(
            "\n  auth-server demo is running: listening on {addr} (from {source}).\n\
             {exposed}\
             \x20 Open {base}/demo and sign in as 김지수 (Gmail only), then press 재인증.\n\
             \x20 What the assistant did (the fake Calendar, and a button that plays the skill): {base}/demo/calendar\n\
             \x20 Fake Google: {fake}   Database: {db}\n\
             {key_line}\n\
             \x20 A token for 김지수, as skill-calendar asks for it (scope_missing until 재인증):\n\
             \x20   curl -sS -X POST {base}/internal/passport/gmail/token \\\n\
             \x20     -H \"Authorization: Bearer {bearer}\" -H 'Content-Type: application/json' \\\n\
             \x20     -d '{body}'\n\
             \x20 Her calendar, with the access_token it answers:\n\
             \x20   curl -sS {fake}/calendar/v3/calendars/primary/events -H \"Authorization: Bearer <access_token>\"\n\
             \x20 Press Ctrl-C to stop.\n\n",
            addr = self.addr,
            source = self.source,
            fake = self.fake_base,
            db = self.database,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addr_beyond_this_machine_keeps_only_its_port() {
        let (addr, source) = resolve_bind(None, Some("0.0.0.0:51200")).unwrap();
        assert_eq!(addr, "127.0.0.1:51200".parse().unwrap());
        assert_eq!(source, BindSource::EnvPortOnLoopback);
        let (addr, source) = resolve_bind(None, Some("127.0.0.1:51201")).unwrap();
        assert_eq!(addr, "127.0.0.1:51201".parse().unwrap());
        assert_eq!(source, BindSource::Env);
        let wide: SocketAddr = "0.0.0.0:51202".parse().unwrap();
        assert_eq!(
            resolve_bind(Some(wide), Some("127.0.0.1:1")).unwrap(),
            (wide, BindSource::Flag)
        );
        assert_eq!(resolve_bind(None, None).unwrap().1, BindSource::Default);
    }
}
