//! Proactive health: the refresh sweep finds broken passports first, and
//! durable, signed webhooks tell ro-being — through receivers that fail,
//! time out, vanish, restart, and two dispatchers at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::faults::DbProxy;
use crate::helpers::*;
use crate::wait::{wait_for, wait_until};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

const SECRET: &str = "webhook-secret-for-tests-0123456789abcdef";

#[derive(Debug, Clone, Copy)]
enum Mode {
    Ok,
    Status(u16),
    /// Answer only after this long (longer than the delivery timeout).
    Hang(Duration),
    /// Answer 200 after this long (within the delivery timeout).
    Slow(Duration),
    /// Close the connection without answering.
    Close,
}

#[derive(Debug, Clone)]
pub(crate) struct Hit {
    event_id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    /// The receiver answers this request 2xx in time: the event is stored.
    ok: bool,
}

/// A small HTTP receiver whose answers the test scripts.
#[derive(Clone)]
pub(crate) struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Mode>>>,
    fallback: Arc<Mutex<Mode>>,
    /// Requests being handled now, per event id.
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    /// Event ids that arrived while a request for the same event was still
    /// being handled (one entry per overlapping arrival).
    overlaps: Arc<Mutex<Vec<String>>>,
}

/// Counts one request in flight until it is answered or dropped.
struct InFlight {
    event_id: String,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self.in_flight.lock().unwrap();
        if let Some(n) = m.get_mut(&self.event_id) {
            *n -= 1;
        }
    }
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/passport", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            hits: Arc::default(),
            script: Arc::default(),
            fallback: Arc::new(Mutex::new(Mode::Ok)),
            in_flight: Arc::default(),
            overlaps: Arc::default(),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(sock).await });
            }
        });
        r
    }

    fn then(&self, modes: &[Mode]) {
        self.script.lock().unwrap().extend(modes.iter().copied());
    }

    fn set(&self, mode: Mode) {
        *self.fallback.lock().unwrap() = mode;
    }

    async fn serve(&self, mut sock: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, content_length) = loop {
            let n = match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                break (i + 4, len);
            }
        };
        while buf.len() < head_end + content_length {
            let n = match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let event_id = header("x-passport-event-id");
        let _in_flight = self.enter(&event_id);
        let mode = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*self.fallback.lock().unwrap());
        let ok = match mode {
            Mode::Ok | Mode::Slow(_) => true,
            Mode::Status(s) => (200..300).contains(&s),
            Mode::Hang(_) | Mode::Close => false,
        };
        self.hits.lock().unwrap().push(Hit {
            event_id,
            timestamp: header("x-passport-timestamp"),
            signature: header("x-passport-signature"),
            body: buf[head_end..head_end + content_length].to_vec(),
            ok,
        });
        let status = match mode {
            Mode::Ok => 200,
            Mode::Status(s) => s,
            // A slow receiver is the scripted behaviour, not a wait.
            Mode::Hang(d) | Mode::Slow(d) => {
                // Until the dispatcher closes the connection: a request it
                // gave up on is no longer in flight.
                let mut more = [0u8; 1];
                tokio::select! {
                    () = tokio::time::sleep(d) => 200,
                    _ = sock.read(&mut more) => return,
                }
            }
            Mode::Close => return,
        };
        let _ = sock
            .write_all(
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
    }

    /// Count a request for `event_id` in flight; note an overlap when one
    /// for the same event is already being handled.
    fn enter(&self, event_id: &str) -> InFlight {
        let mut m = self.in_flight.lock().unwrap();
        let n = m.entry(event_id.to_string()).or_default();
        if *n > 0 {
            self.overlaps.lock().unwrap().push(event_id.to_string());
        }
        *n += 1;
        InFlight {
            event_id: event_id.to_string(),
            in_flight: self.in_flight.clone(),
        }
    }

    fn overlaps(&self) -> Vec<String> {
        self.overlaps.lock().unwrap().clone()
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Wait until `pred` holds for the hits so far.
    pub(crate) async fn wait_for(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        wait_for(what, Duration::from_secs(20), async || {
            let hits = self.hits();
            if pred(&hits) {
                Ok(hits)
            } else {
                Err(hits)
            }
        })
        .await
    }
}

fn hook_settings(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("WEBHOOK_URL", receiver.url.clone()),
        ("WEBHOOK_SECRET", SECRET.into()),
        ("WEBHOOK_POLL_MS", "30".into()),
        ("WEBHOOK_RETRY_BASE_MS", "40".into()),
        ("WEBHOOK_LEASE_SECS", "2".into()),
        ("WEBHOOK_TIMEOUT_SECS", "1".into()),
        ("WEBHOOK_MAX_ATTEMPTS", "4".into()),
    ]
}

pub(crate) async fn spawn_with_hooks(receiver: &Receiver, extra: &[(&str, &str)]) -> TestApp {
    let s = hook_settings(receiver);
    let mut all: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    TestApp::spawn_with(&all).await
}

/// The receiving team's check (docs/webhooks.md): `v2=` + hex
/// HMAC-SHA256 over "<timestamp>.<event id>.<body>" with the shared secret,
/// the event id taken from `X-Passport-Event-Id` as received.
fn signature_verifies(hit: &Hit, event_id: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{event_id}.", hit.timestamp).as_bytes());
    mac.update(&hit.body);
    let Some(got) = hit.signature.strip_prefix("v2=") else {
        return false;
    };
    let got: Option<Vec<u8>> = (0..got.len() / 2)
        .map(|i| u8::from_str_radix(got.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    got.is_some_and(|g| mac.verify_slice(&g).is_ok())
}

/// Verify a delivery as the receiving team would, and check what it carries.
pub(crate) fn verify(hit: &Hit) -> serde_json::Value {
    assert!(
        signature_verifies(hit, &hit.event_id),
        "signature verifies: {}",
        hit.signature
    );
    let age = chrono::Utc::now().timestamp() - hit.timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "fresh timestamp");
    let v: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(
        v["id"].as_str().unwrap(),
        hit.event_id,
        "idempotency id in header and body"
    );
    let text = String::from_utf8_lossy(&hit.body);
    for leak in ["ya29.", "1//", "enc:v1", "access_token", "refresh_token"] {
        assert!(!text.contains(leak), "webhook carries `{leak}`: {text}");
    }
    v
}

async fn outbox(app: &TestApp) -> Vec<(String, String, i32)> {
    sqlx::query_as("SELECT event_id::text, status, attempts FROM webhook_outbox ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// Wait until the outbox rows satisfy `done`; returns them.
async fn outbox_when(
    app: &TestApp,
    what: &str,
    deadline: Duration,
    done: impl Fn(&[(String, String, i32)]) -> bool,
) -> Vec<(String, String, i32)> {
    wait_for(what, deadline, async || {
        let rows = outbox(app).await;
        if done(&rows) {
            Ok(rows)
        } else {
            Err(rows)
        }
    })
    .await
}

async fn insert_events(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO webhook_outbox (event_id, kind, user_id, payload) VALUES ($1, 'connected', $2, jsonb_build_object('id', $1::text, 'type', 'passport.connected'))",
        )
        .bind(id)
        .bind(Uuid::new_v4())
        .execute(&app.db)
        .await
        .unwrap();
        ids.push(id.to_string());
    }
    ids
}

#[tokio::test]
async fn a_delivery_replayed_under_another_event_id_does_not_verify() {
    let receiver = Receiver::start().await;
    let app = spawn_with_hooks(&receiver, &[]).await;
    app.browser(Some(Uuid::new_v4()))
        .reauth(None, JISOO, ALL, true)
        .await;
    let hits = receiver.wait_for("connected", |h| !h.is_empty()).await;
    let captured = &hits[0];
    assert!(signature_verifies(captured, &captured.event_id));
    // The same timestamp, signature and body under a fresh
    // `X-Passport-Event-Id` (which would get past deduplication) is refused.
    let replay = Hit {
        event_id: Uuid::new_v4().to_string(),
        ..captured.clone()
    };
    assert!(
        !signature_verifies(&replay, &replay.event_id),
        "a swapped event id must not verify"
    );
}

#[tokio::test]
async fn a_connection_is_announced_signed_verifiable_and_without_tokens() {
    let receiver = Receiver::start().await;
    let app = spawn_with_hooks(&receiver, &[]).await;
    let user = Uuid::new_v4();
    app.browser(Some(user)).reauth(None, JISOO, ALL, true).await;
    let hits = receiver.wait_for("connected", |h| !h.is_empty()).await;
    let v = verify(&hits[0]);
    assert_eq!(v["type"], "passport.connected");
    assert_eq!(v["user_id"], user.to_string());
    assert_eq!(v["provider"], "gmail");
    assert_eq!(v["data"]["email"], JISOO);
    assert_eq!(v["data"]["missing_scopes"], serde_json::json!([]));
    assert_eq!(
        v["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
    // The receiver saw the request before it answered: the row is marked
    // delivered once the answer is back.
    let rows = outbox_when(
        &app,
        "the event marked delivered",
        Duration::from_secs(10),
        |rows| rows.iter().any(|r| r.1 == "delivered"),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].1.as_str(), rows[0].2), ("delivered", 1));
}

#[tokio::test]
async fn the_sweep_finds_a_revoked_passport_before_any_skill_asks_and_tells_ro_being() {
    let receiver = Receiver::start().await;
    let app = spawn_with_hooks(
        &receiver,
        &[("SWEEP_AFTER_SECS", "3600"), ("SWEEP_INTERVAL_SECS", "1")],
    )
    .await;
    let stale = Uuid::new_v4();
    let fresh = Uuid::new_v4();
    app.seed_passport(stale, JISOO, ALL).await;
    app.seed_passport(fresh, MINHO, ALL).await;
    sqlx::query(
        "UPDATE gmail_token SET created_at = now() - interval '2 days', consented_at = now() - interval '2 days' WHERE user_id = $1",
    )
    .bind(stale)
    .execute(&app.db)
    .await
    .unwrap();
    // The user removed the app at Google; nobody has asked for a token since.
    app.fake.revoke_account(JISOO);

    wait_until(
        "the sweep to mark the revoked passport reauth_required",
        Duration::from_secs(15),
        async || app.row(stale).await.unwrap().status == ConnectionStatus::ReauthRequired,
    )
    .await;
    assert_eq!(
        app.fake.calls("token.refresh_token"),
        1,
        "only the stale connection was refreshed"
    );
    assert_eq!(
        app.row(fresh).await.unwrap().status,
        ConnectionStatus::Active
    );
    let hits = receiver
        .wait_for("reauth_required", |h| !h.is_empty())
        .await;
    let v = verify(&hits[0]);
    assert_eq!(v["type"], "passport.reauth_required");
    assert_eq!(v["user_id"], stale.to_string());
    assert!(
        v["data"]["cause"]
            .as_str()
            .unwrap()
            .starts_with("invalid_grant"),
        "{v}"
    );

    // 재인증 afterwards announces the recovery.
    app.browser(Some(stale))
        .reauth(None, JISOO, ALL, true)
        .await;
    let hits = receiver.wait_for("recovered", |h| h.len() >= 3).await;
    let types: Vec<String> = hits
        .iter()
        .map(|h| verify(h)["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        types.contains(&"passport.recovered".to_string()),
        "{types:?}"
    );
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_delivered() {
    let receiver = Receiver::start().await;
    receiver.then(&[
        Mode::Status(500),
        Mode::Close,
        Mode::Hang(Duration::from_secs(3)),
    ]);
    let app = spawn_with_hooks(&receiver, &[]).await;
    let ids = insert_events(&app, 1).await;
    let hits = receiver
        .wait_for("the fourth attempt", |h| h.len() >= 4)
        .await;
    assert!(
        hits.iter().all(|h| h.event_id == ids[0]),
        "the same idempotency id every time"
    );
    let rows = outbox_when(
        &app,
        "the event marked delivered",
        Duration::from_secs(10),
        |rows| rows[0].1 == "delivered",
    )
    .await;
    assert_eq!(
        rows[0].2, 4,
        "500, closed connection, timeout, then delivered"
    );
}

#[tokio::test]
async fn gone_and_exhausted_events_become_dead_letters_that_can_be_retried() {
    let receiver = Receiver::start().await;
    receiver.then(&[Mode::Status(410)]);
    let app = spawn_with_hooks(&receiver, &[]).await;
    let gone = insert_events(&app, 1).await;
    receiver.wait_for("410", |h| !h.is_empty()).await;
    // An event that fails every time: dead after WEBHOOK_MAX_ATTEMPTS (4).
    receiver.set(Mode::Status(503));
    let exhausted = insert_events(&app, 1).await;
    let rows = outbox_when(&app, "both events dead", Duration::from_secs(15), |rows| {
        rows.iter().all(|r| r.1 == "dead")
    })
    .await;
    assert_eq!(rows[0].2, 1, "410: no retry");
    assert_eq!(rows[1].2, 4, "gave up after 4 attempts");
    let report = crate::doctor::run_cli_env(&app, &["report"], &[]).await;
    let text = String::from_utf8_lossy(&report.stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("dead letters") && l.trim_end().ends_with(" 2")),
        "{text}"
    );

    // The receiver is back; an operator re-queues the dead letters.
    receiver.set(Mode::Ok);
    let hooks = hook_settings(&receiver);
    let env: Vec<(&str, &str)> = hooks.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = crate::doctor::run_cli_env(&app, &["webhooks", "retry", "--dead"], &env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 dead letters re-queued"));
    let delivered: Vec<String> = [gone[0].clone(), exhausted[0].clone()].to_vec();
    receiver
        .wait_for("both delivered", |h| {
            delivered
                .iter()
                .all(|id| h.iter().filter(|x| &x.event_id == id).count() >= 2)
        })
        .await;
    wait_until(
        "both re-queued events marked delivered",
        Duration::from_secs(10),
        async || outbox(&app).await.iter().all(|r| r.1 == "delivered"),
    )
    .await;
}

#[tokio::test]
async fn a_dispatcher_killed_mid_delivery_is_taken_over_by_another() {
    let receiver = Receiver::start().await;
    // The first delivery hangs: the instance is stopped while waiting for
    // it, drops the request after half its grace period and hands the
    // event back.
    receiver.then(&[Mode::Hang(Duration::from_secs(30))]);
    let a = spawn_with_hooks(
        &receiver,
        &[("WEBHOOK_TIMEOUT_SECS", "30"), ("SHUTDOWN_GRACE_SECS", "2")],
    )
    .await;
    let ids = insert_events(&a, 1).await;
    receiver
        .wait_for("the hanging delivery", |h| !h.is_empty())
        .await;
    let database_url = a.database_url.clone();
    let fake = a.fake.clone();
    let fake_addr = a.fake_addr.clone();
    drop(a); // SIGTERM-like stop in the middle of the delivery.

    let hooks = hook_settings(&receiver);
    let env: Vec<(&str, &str)> = hooks.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b = TestApp::spawn_full(database_url, fake, fake_addr, &env).await;
    let hits = receiver.wait_for("redelivery", |h| h.len() >= 2).await;
    assert!(hits.iter().all(|h| h.event_id == ids[0]));
    wait_until(
        "the taken-over event marked delivered",
        Duration::from_secs(10),
        async || outbox(&b).await[0].1 == "delivered",
    )
    .await;
}

#[tokio::test]
async fn two_dispatchers_deliver_every_event_once() {
    let receiver = Receiver::start().await;
    // A little latency so that both instances are busy at the same time.
    receiver.set(Mode::Hang(Duration::from_millis(30)));
    // A lease far longer than a batch takes even on a loaded machine: a
    // lease that runs out is a legitimate redelivery, not what this tests.
    let lease = ("WEBHOOK_LEASE_SECS", "30");
    let a = spawn_with_hooks(&receiver, &[lease]).await;
    let hooks = hook_settings(&receiver);
    let mut env: Vec<(&str, &str)> = hooks.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(lease);
    let b = a.sibling(&env).await;
    let ids = insert_events(&a, 40).await;
    receiver.wait_for("40 deliveries", |h| h.len() >= 40).await;
    // Once every row is delivered no instance can claim it again (a claim
    // takes only pending rows and counts an attempt), so the receiver has
    // seen every delivery there will be.
    let rows = outbox_when(
        &b,
        "all 40 events marked delivered",
        Duration::from_secs(15),
        |rows| rows.iter().all(|r| r.1 == "delivered"),
    )
    .await;
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter().all(|r| r.2 == 1),
        "every event claimed once: {rows:?}"
    );
    let hits = receiver.hits();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for h in &hits {
        *per_id.entry(h.event_id.clone()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            per_id.get(id),
            Some(&1),
            "event {id} delivered exactly once"
        );
    }
    assert_eq!(hits.len(), 40, "no delivery beyond one per event");
}

#[tokio::test]
async fn deliveries_go_on_after_the_database_restarts() {
    let receiver = Receiver::start().await;
    let proxy = DbProxy::start().await;
    let (direct, via_proxy) = proxy.fresh_database().await;
    let hooks = hook_settings(&receiver);
    let env: Vec<(&str, &str)> = hooks.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_on(via_proxy, &env).await;
    let direct_pool = sqlx::PgPool::connect(&direct).await.unwrap();

    let insert = |pool: sqlx::PgPool| async move {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO webhook_outbox (event_id, kind, user_id, payload) VALUES ($1, 'connected', $2, '{}')")
            .bind(id)
            .bind(Uuid::new_v4())
            .execute(&pool)
            .await
            .unwrap();
        id.to_string()
    };
    let first = insert(direct_pool.clone()).await;
    receiver
        .wait_for("before the restart", |h| {
            h.iter().any(|x| x.event_id == first)
        })
        .await;

    proxy.restart(Duration::from_millis(1500)).await;
    let second = insert(direct_pool.clone()).await;
    receiver
        .wait_for("after the restart", |h| {
            h.iter().any(|x| x.event_id == second)
        })
        .await;
    wait_for(
        "both events marked delivered",
        Duration::from_secs(10),
        async || {
            let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM webhook_outbox")
                .fetch_all(&direct_pool)
                .await
                .unwrap();
            if statuses.iter().all(|s| s == "delivered") {
                Ok(())
            } else {
                Err(statuses)
            }
        },
    )
    .await;
    drop(app);
}

/// Wait until every outbox row is `delivered` (a dead letter fails at once).
async fn all_delivered(app: &TestApp, deadline: Duration) -> Vec<(String, String, i32)> {
    wait_for("every event marked delivered", deadline, async || {
        let rows = outbox(app).await;
        assert!(
            !rows.iter().any(|r| r.1 == "dead"),
            "a dead letter: {rows:?}"
        );
        if rows.iter().all(|r| r.1 == "delivered") {
            Ok(rows)
        } else {
            Err(rows)
        }
    })
    .await
}

/// Settings for `receiver` with some overridden (later pairs win).
fn hook_env<'a>(
    hooks: &'a [(&'static str, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = hooks.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn two_instances_and_a_slow_receiver_never_deliver_one_event_twice_at_once() {
    let receiver = Receiver::start().await;
    // 1–3 s per request, longer than the 2 s lease; well within the timeout.
    let slow: Vec<Mode> = (0..60)
        .map(|i| Mode::Slow(Duration::from_millis(1000 + 1000 * (i % 3))))
        .collect();
    receiver.then(&slow);
    receiver.set(Mode::Slow(Duration::from_secs(1)));
    let hooks = hook_settings(&receiver);
    let env = hook_env(
        &hooks,
        &[("WEBHOOK_LEASE_SECS", "2"), ("WEBHOOK_TIMEOUT_SECS", "10")],
    );
    let a = TestApp::spawn_with(&env).await;
    let _b = a.sibling(&env).await;
    let ids = insert_events(&a, 10).await;
    all_delivered(&a, Duration::from_secs(90)).await;
    let hits = receiver.hits();
    let overlaps = receiver.overlaps();
    eprintln!(
        "{} requests for {} events; {} arrived while the same event was in flight",
        hits.len(),
        ids.len(),
        overlaps.len()
    );
    for id in &ids {
        assert!(
            hits.iter().any(|h| &h.event_id == id && h.ok),
            "event {id} delivered"
        );
    }
    assert_eq!(
        overlaps,
        Vec::<String>::new(),
        "events delivered twice at the same time"
    );
}

/// Insert `(user, kind)` events in this order, in one transaction.
async fn insert_user_events(app: &TestApp, events: &[(Uuid, &str)]) -> Vec<String> {
    let mut tx = app.db.begin().await.unwrap();
    let mut ids = Vec::new();
    for (user, kind) in events {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO webhook_outbox (event_id, kind, user_id, payload) VALUES ($1, $3, $2, jsonb_build_object('id', $1::text, 'type', 'passport.' || $3, 'user_id', $2::text))",
        )
        .bind(id)
        .bind(user)
        .bind(kind)
        .execute(&mut *tx)
        .await
        .unwrap();
        ids.push(id.to_string());
    }
    tx.commit().await.unwrap();
    ids
}

/// For each user, the pairs of its events whose first successful deliveries
/// came in the opposite order to the one they were inserted in.
fn out_of_order_pairs(hits: &[Hit], per_user: &[Vec<String>]) -> Vec<(String, String)> {
    let mut first_ok: HashMap<&str, usize> = HashMap::new();
    for (i, h) in hits.iter().enumerate().filter(|(_, h)| h.ok) {
        first_ok.entry(h.event_id.as_str()).or_insert(i);
    }
    let mut wrong = Vec::new();
    for events in per_user {
        for (i, earlier) in events.iter().enumerate() {
            for later in &events[i + 1..] {
                if first_ok[later.as_str()] < first_ok[earlier.as_str()] {
                    wrong.push((earlier.clone(), later.clone()));
                }
            }
        }
    }
    wrong
}

#[tokio::test]
async fn each_users_events_arrive_in_the_order_they_happened_despite_retries() {
    let receiver = Receiver::start().await;
    // The receiver fails its first requests (errors, closed connections),
    // then recovers.
    receiver.then(&[
        Mode::Status(500),
        Mode::Close,
        Mode::Status(503),
        Mode::Status(500),
        Mode::Close,
        Mode::Status(502),
        Mode::Status(500),
        Mode::Close,
    ]);
    let hooks = hook_settings(&receiver);
    let env = hook_env(&hooks, &[("WEBHOOK_MAX_ATTEMPTS", "30")]);
    let a = TestApp::spawn_with(&env).await;
    let _b = a.sibling(&env).await;
    let users: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    // Interleaved: every user connects, then upgrades, then disconnects.
    let kinds = ["connected", "upgraded", "disconnected"];
    let events: Vec<(Uuid, &str)> = kinds
        .iter()
        .flat_map(|k| users.iter().map(move |u| (*u, *k)))
        .collect();
    let ids = insert_user_events(&a, &events).await;
    all_delivered(&a, Duration::from_secs(60)).await;
    let per_user: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            events
                .iter()
                .zip(&ids)
                .filter(|((user, _), _)| user == u)
                .map(|(_, id)| id.clone())
                .collect()
        })
        .collect();
    let hits = receiver.hits();
    let wrong = out_of_order_pairs(&hits, &per_user);
    eprintln!(
        "{} requests; {} of {} per-user pairs out of order",
        hits.len(),
        wrong.len(),
        users.len() * 3
    );
    assert_eq!(wrong, Vec::<(String, String)>::new(), "per-user order");
}

#[tokio::test]
async fn a_dispatcher_cut_off_from_the_database_lets_go_before_its_lease_ends() {
    let receiver = Receiver::start().await;
    // The first request hangs; instance A cannot renew its lease meanwhile.
    receiver.then(&[Mode::Hang(Duration::from_secs(30))]);
    let proxy = DbProxy::start().await;
    let (direct, via_proxy) = proxy.fresh_database().await;
    let hooks = hook_settings(&receiver);
    let env = hook_env(&hooks, &[("WEBHOOK_TIMEOUT_SECS", "30")]);
    let a = TestApp::spawn_on(via_proxy, &env).await;
    let ids = insert_events(&a, 1).await;
    receiver
        .wait_for("A's hanging delivery", |h| !h.is_empty())
        .await;
    proxy.set(crate::faults::Mode::Stalled);
    // B reaches the database; it takes the event over once A's lease ended.
    let b = TestApp::spawn_on(direct, &env).await;
    let hits = receiver
        .wait_for("B's redelivery", |h| h.iter().any(|x| x.ok))
        .await;
    assert!(hits.iter().all(|h| h.event_id == ids[0]));
    wait_until(
        "the taken-over event marked delivered",
        Duration::from_secs(10),
        async || outbox(&b).await[0].1 == "delivered",
    )
    .await;
    let overlaps = receiver.overlaps();
    eprintln!("{} requests; {} overlapping", hits.len(), overlaps.len());
    assert_eq!(
        overlaps,
        Vec::<String>::new(),
        "A still sending when B sent"
    );
    proxy.set(crate::faults::Mode::Up);
    drop(a);
}

#[tokio::test]
async fn a_dead_letter_does_not_hold_back_the_users_later_events() {
    let receiver = Receiver::start().await;
    receiver.then(&[Mode::Status(410)]);
    let app = spawn_with_hooks(&receiver, &[]).await;
    let user = Uuid::new_v4();
    let ids = insert_user_events(&app, &[(user, "connected"), (user, "disconnected")]).await;
    receiver
        .wait_for("the later event delivered", |h| {
            h.iter().any(|x| x.event_id == ids[1] && x.ok)
        })
        .await;
    let rows = outbox_when(
        &app,
        "both outcomes recorded",
        Duration::from_secs(10),
        |rows| rows[1].1 == "delivered",
    )
    .await;
    assert_eq!(rows[0].1, "dead", "410: a dead letter");
}
