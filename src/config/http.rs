//! How the HTTP server treats connections: how long a client may take to
//! send a request head (or stay idle between requests), how long a request
//! may run, how many connections may be open at once.

use std::time::Duration;

use super::Checker;

keys! {
    HTTP_HEADER_READ_TIMEOUT_SECS,
    HTTP_REQUEST_TIMEOUT_SECS,
    HTTP_MAX_CONNECTIONS,
}

/// Connection limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// From the moment the server waits for a request (a new connection, or
    /// the previous response sent on a keep-alive) until its head is
    /// complete; a connection that takes longer, idle or dripping, is closed.
    pub header_read_timeout: Duration,
    /// Longest a request may run before it is answered 503 `unavailable`.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
}

pub(super) fn check(c: &mut Checker) -> HttpSettings {
    HttpSettings {
        header_read_timeout: c.seconds(HTTP_HEADER_READ_TIMEOUT_SECS, 10, 1..=600),
        request_timeout: c.seconds(HTTP_REQUEST_TIMEOUT_SECS, 30, 1..=600),
        max_connections: c.number(HTTP_MAX_CONNECTIONS, 4096, 16..=1_000_000, "connections")
            as usize,
    }
}
