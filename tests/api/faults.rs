//! Real faults for the tests: a TCP proxy in front of PostgreSQL that can
//! stall (hold every byte, as a locked or hung database does), drop every
//! connection, or refuse new ones (a database that is down).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

use crate::helpers::{fresh_database, postgres_tcp_addr};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward everything.
    Up = 0,
    /// Accept connections and keep them open, but forward nothing either way.
    Stalled = 1,
    /// Refuse new connections (accept and close at once).
    Down = 2,
}

/// A TCP forwarder to the tests' PostgreSQL.
pub struct DbProxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    mode_changed: watch::Sender<u8>,
    kill: broadcast::Sender<()>,
}

impl DbProxy {
    pub async fn start() -> Self {
        let upstream = postgres_tcp_addr();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Up as u8));
        let (mode_changed, _) = watch::channel(Mode::Up as u8);
        let (kill, _) = broadcast::channel::<()>(4);
        let proxy = DbProxy {
            port,
            mode: mode.clone(),
            mode_changed: mode_changed.clone(),
            kill: kill.clone(),
        };
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if mode.load(Ordering::SeqCst) == Mode::Down as u8 {
                    continue; // dropped: the client sees the connection closed
                }
                let link = Link {
                    upstream: upstream.clone(),
                    mode: mode_changed.subscribe(),
                    killed: kill.subscribe(),
                };
                tokio::spawn(link.run(inbound));
            }
        });
        proxy
    }

    /// A database URL that goes through this proxy to `database_url`'s database.
    pub fn url_for(&self, database_url: &str) -> String {
        let mut url: url::Url = database_url.parse().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// A fresh database and its URL through this proxy.
    pub async fn fresh_database(&self) -> (String, String) {
        let direct = fresh_database().await;
        let via = self.url_for(&direct);
        (direct, via)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        let _ = self.mode_changed.send(mode as u8);
    }

    /// Drop every open connection (new ones are served per the mode).
    pub fn drop_all(&self) {
        let _ = self.kill.send(());
    }

    /// Drop everything and refuse connections for `down_for`: a restart.
    pub async fn restart(&self, down_for: Duration) {
        self.set(Mode::Down);
        self.drop_all();
        // The outage itself: the database stays away this long.
        tokio::time::sleep(down_for).await;
        self.set(Mode::Up);
    }
}

/// One proxied connection.
struct Link {
    upstream: String,
    mode: watch::Receiver<u8>,
    killed: broadcast::Receiver<()>,
}

impl Link {
    async fn run(mut self, inbound: TcpStream) {
        let outbound = match TcpStream::connect(&self.upstream).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("DbProxy: cannot reach PostgreSQL at {}: {e}", self.upstream);
                return;
            }
        };
        let (mut in_r, mut in_w) = inbound.into_split();
        let (mut out_r, mut out_w) = outbound.into_split();
        let up = pump(&mut in_r, &mut out_w, self.mode.clone());
        let down = pump(&mut out_r, &mut in_w, self.mode.clone());
        tokio::select! {
            _ = async { tokio::join!(up, down) } => {}
            _ = self.killed.recv() => {}
        }
    }
}

/// Copy bytes one way, holding them while the proxy is stalled.
async fn pump(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    mut mode: watch::Receiver<u8>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *mode.borrow_and_update() == Mode::Stalled as u8 {
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
