//! The process: its database, where it listens, how long requests may finish
//! on shutdown, how it logs.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use super::Checker;

keys! {
    DATABASE_URL,
    BIND_ADDR,
    SHUTDOWN_GRACE_SECS,
    LOG_FORMAT,
}

const DEFAULT_BIND_ADDR: &str = "0.0.0.0:51123";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

pub(super) struct Server {
    pub database_url: SecretString,
    pub bind_addr: SocketAddr,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
}

pub(super) fn check(c: &mut Checker) -> Option<Server> {
    let database_url = c.required(DATABASE_URL);
    if let Some(db) = &database_url {
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            c.problem("DATABASE_URL must start with postgres:// or postgresql://");
        }
    }

    let bind_addr = c
        .value(BIND_ADDR)
        .as_deref()
        .unwrap_or(DEFAULT_BIND_ADDR)
        .parse()
        .ok();
    if bind_addr.is_none() {
        c.problem("BIND_ADDR must be an address such as 0.0.0.0:51123");
    }

    let shutdown_grace = c.seconds(SHUTDOWN_GRACE_SECS, 20, 1..=300);

    let log_format = match c.value(LOG_FORMAT).as_deref() {
        None | Some("pretty") => Some(LogFormat::Pretty),
        Some("json") => Some(LogFormat::Json),
        Some(_) => {
            c.problem("LOG_FORMAT must be `json` or `pretty`");
            None
        }
    };

    Some(Server {
        database_url: SecretString::from(database_url?),
        bind_addr: bind_addr?,
        shutdown_grace,
        log_format: log_format?,
    })
}
