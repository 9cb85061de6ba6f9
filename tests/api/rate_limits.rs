//! Rate limits behind a reverse proxy: anonymous traffic from the proxy's
//! address is limited per IP, signed-in users per user, and the one never
//! uses up the other's budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::wait::wait_until;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use uuid::Uuid;

/// Signed-in users who connect at once, all through one proxy address.
const USERS: usize = 1000;
/// Users in flight at a time (a proxy multiplexes many browsers).
const IN_FLIGHT: usize = 48;
/// Anonymous clients flooding from the same address.
const FLOODERS: usize = 3;

/// One user's journey as a browser behind the proxy makes it:
/// connect → Google's consent screen → callback. Returns how it ended.
async fn journey(app_addr: &str, fake_addr: &str, user: Uuid, n: usize) -> Result<(), String> {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(
        &format!("access_token={}; Path=/", session_for(user)),
        &app_addr.parse().unwrap(),
    );
    // What the proxy adds: the browser's own address (each user another).
    let mut headers = HeaderMap::new();
    let xff = format!("198.18.{}.{}", n / 250, n % 250 + 1);
    headers.insert("x-forwarded-for", HeaderValue::from_str(&xff).unwrap());
    let browser = Browser {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .build()
            .unwrap(),
        jar,
        app: app_addr.to_string(),
        fake: fake_addr.to_string(),
    };
    let connect = browser
        .connect(Some("https://ro-being.com/settings/items"))
        .await;
    if connect.status() != StatusCode::FOUND {
        return Err(format!("connect {}", connect.status().as_u16()));
    }
    let authorize = location(&connect);
    let callback = browser.decide(&authorize, JISOO, ALL, true).await;
    let done = browser.callback(&callback).await;
    if done.status() != StatusCode::FOUND {
        return Err(format!("callback {}", done.status().as_u16()));
    }
    let landed = query_map(&location(&done));
    match landed.get("result").map(String::as_str) {
        Some("connected") => Ok(()),
        other => Err(format!("callback result {other:?}")),
    }
}

/// What the anonymous flood got.
#[derive(Default)]
struct Flood {
    sent: AtomicU64,
    refused: AtomicU64,
    /// Answers other than 429 or the expected refusals (401 sign in, 400
    /// unknown state): must stay 0.
    odd: AtomicU64,
}

/// Anonymous requests from the proxy's address, as fast as one client can:
/// connect and callback without a session, and with a session that does
/// not verify.
async fn flood(app_addr: String, stats: Arc<Flood>, stop: Arc<AtomicBool>, k: usize) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut i = k;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let req = match i % 3 {
            0 => client.get(format!("{app_addr}/passport/gmail/connect")),
            1 => client
                .get(format!("{app_addr}/passport/gmail/callback?state=x&code=y"))
                .header("cookie", "access_token=not-a-session"),
            _ => client
                .post(format!("{app_addr}/api/passport/gmail/connect"))
                .bearer_auth("forged.session.token"),
        };
        let status = req
            .header("x-forwarded-for", "203.0.113.66")
            .send()
            .await
            .unwrap()
            .status();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        match status {
            StatusCode::TOO_MANY_REQUESTS => stats.refused.fetch_add(1, Ordering::Relaxed),
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => 0,
            _ => stats.odd.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The cut-over scenario: no `TRUSTED_PROXIES`, so every request
/// arrives from the proxy's address (127.0.0.1 here) and the forwarded
/// header is ignored. An anonymous flood from that address is refused with
/// 429, and every one of 1,000 signed-in users still connects (connect,
/// Google's consent, callback) without a single refusal.
///
/// Figures (users, wall time, flood refused) are printed for the record;
/// nothing is asserted on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_signed_in_users_behind_one_proxy_connect_through_an_anonymous_flood() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_BROWSER_IP_PER_MIN", "60")]).await;
    let stats = Arc::new(Flood::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flood_start = Instant::now();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|k| tokio::spawn(flood(app.addr.clone(), stats.clone(), stop.clone(), k)))
        .collect();
    // The address's anonymous budget is used up before the users come.
    wait_until(
        "the flood to be refused",
        Duration::from_secs(30),
        async || stats.refused.load(Ordering::Relaxed) > 0,
    )
    .await;

    let start = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut users = tokio::task::JoinSet::new();
    for n in 0..USERS {
        let (addr, fake, gate) = (app.addr.clone(), app.fake_addr.clone(), gate.clone());
        users.spawn(async move {
            let _slot = gate.acquire_owned().await.unwrap();
            journey(&addr, &fake, Uuid::new_v4(), n).await
        });
    }
    let mut failures: Vec<String> = Vec::new();
    while let Some(done) = users.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e);
        }
    }
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }

    let (sent, refused, odd) = (
        stats.sent.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.odd.load(Ordering::Relaxed),
    );
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &failures {
        *kinds.entry(f.as_str()).or_default() += 1;
    }
    println!(
        "rate limits behind one proxy: {USERS} signed-in users ({IN_FLIGHT} in flight), \
         {} connected in {:.1} s, failures {kinds:?}; anonymous flood: {sent} sent, \
         {refused} refused with 429, {odd} other answers",
        USERS - failures.len(),
        wall.as_secs_f64(),
    );
    assert!(failures.is_empty(), "signed-in users refused: {kinds:?}");
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gmail_token WHERE status = 'active'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(active, USERS as i64, "every user holds a connection");
    // The flood got its burst of 60 and one more a second, no more.
    let allowed = sent - refused;
    let budget = 60 + flood_start.elapsed().as_secs() + 2;
    assert!(
        refused > 0 && allowed <= budget,
        "anonymous flood: {sent} sent, {refused} refused"
    );
    assert_eq!(odd, 0, "the flood only ever got 429, 401 or 400");
}

/// `GET /passport/gmail/callback` for a state nobody started.
async fn stray_callback(client: &reqwest::Client, app: &TestApp, session: Option<&str>) -> u16 {
    let mut req = client.get(app.url("/passport/gmail/callback?state=x&code=y"));
    if let Some(s) = session {
        req = req.header("cookie", format!("access_token={s}"));
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn anonymous_and_signed_in_requests_from_one_address_have_separate_budgets() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_BROWSER_IP_PER_MIN", "2"),
        ("RATE_LIMIT_CONNECT_USER_PER_MIN", "3"),
    ])
    .await;
    let client = app.client();
    // The address's anonymous budget: two requests, then 429 — for no
    // session, for a forged one, for an expired one, page or API.
    assert_eq!(stray_callback(&client, &app, None).await, 400);
    let anonymous = app.browser(None);
    assert_eq!(anonymous.connect(None).await.status(), 401);
    let expired = auth_server::demo::session_jwt(
        JWT_SECRET.as_bytes(),
        Uuid::new_v4(),
        chrono::Duration::hours(-2),
    );
    for session in [None, Some("forged"), Some(expired.as_str())] {
        assert_eq!(
            stray_callback(&client, &app, session).await,
            429,
            "{session:?}"
        );
    }
    assert_eq!(anonymous.connect(None).await.status(), 429);
    let api = client
        .post(app.url("/api/passport/gmail/connect"))
        .bearer_auth("forged.session.token")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 429);

    // Signed-in users from the same address connect and come back.
    for _ in 0..3 {
        let user = Uuid::new_v4();
        let landed = app.browser(Some(user)).reauth(None, JISOO, ALL, true).await;
        assert_eq!(query_map(&landed)["result"], "connected");
        let api = client
            .post(app.url("/api/passport/gmail/connect"))
            .bearer_auth(session_for(user))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200, "a Bearer session is signed in too");
    }

    // A signed-in user is limited on their own: callbacks in a bucket of
    // their own (3 a minute here), apart from their connects.
    let user = Uuid::new_v4();
    let session = session_for(user);
    for _ in 0..3 {
        assert_eq!(stray_callback(&client, &app, Some(&session)).await, 400);
    }
    assert_eq!(stray_callback(&client, &app, Some(&session)).await, 429);
    let landed = app.browser(Some(user)).start(None).await;
    assert!(landed.as_str().starts_with(&app.fake_addr), "{landed}");
    // ... and another user of the same address is not.
    let other = session_for(Uuid::new_v4());
    assert_eq!(stray_callback(&client, &app, Some(&other)).await, 400);
}

#[tokio::test]
async fn token_requests_with_a_valid_key_never_meet_the_per_ip_limit() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_TOKEN_IP_PER_MIN", "2")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let bad_key = || {
        app.client()
            .post(app.url("/internal/passport/gmail/token"))
            .bearer_auth("not-the-internal-key-0000")
            .json(&serde_json::json!({"user_id": user, "scopes": []}))
            .send()
    };
    assert_eq!(bad_key().await.unwrap().status(), 401);
    assert_eq!(bad_key().await.unwrap().status(), 401);
    assert_eq!(bad_key().await.unwrap().status(), 429);
    for _ in 0..5 {
        assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
    }
}

/// With the server listening on `[::]`, IPv4 clients arrive as
/// `::ffff:127.0.0.1`: that peer matches `TRUSTED_PROXIES=127.0.0.1`, and
/// each forwarded client, mapped or not, has its own anonymous budget.
#[tokio::test]
async fn ipv4_mapped_peers_match_trusted_proxies_and_forwarded_clients_are_apart() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_child, lines, _) = crate::security::spawn_server_with(
        &app,
        &[
            ("BIND_ADDR", &format!("[::]:{port}")),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("RATE_LIMIT_BROWSER_IP_PER_MIN", "2"),
        ],
        |_| {},
    )
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("trusted proxies") && l.contains("127.0.0.1/32")),
        "{lines:#?}"
    );
    let client = app.client();
    let hit = async |xff: &str| {
        client
            .get(format!(
                "http://127.0.0.1:{port}/passport/gmail/callback?state=x"
            ))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Two clients, the second written both ways by proxies along the way.
    assert_eq!(hit("203.0.113.1").await, 400);
    assert_eq!(hit("203.0.113.1").await, 400);
    assert_eq!(hit("::ffff:203.0.113.1").await, 429, "the same client");
    assert_eq!(hit("::ffff:203.0.113.2").await, 400);
    assert_eq!(hit("203.0.113.2").await, 400);
    assert_eq!(hit("203.0.113.2").await, 429);
    assert_eq!(hit("203.0.113.3").await, 400);
}

/// A proxy that `TRUSTED_PROXIES` does not name is pointed out once in the
/// log, with its address, and the start says whom it trusts.
#[tokio::test]
async fn a_forwarding_peer_missing_from_trusted_proxies_is_named_once_in_the_log() {
    let app = TestApp::spawn().await;
    let (mut child, lines, bind, mut later) = crate::security::spawn_server_logging(
        &app,
        &[("RATE_LIMIT_BROWSER_IP_PER_MIN", "0")],
        |_| {},
    )
    .await;
    assert!(
        lines.iter().any(|l| l.contains("TRUSTED_PROXIES is empty")),
        "{lines:#?}"
    );
    let client = app.client();
    for i in 0..150 {
        let resp = client
            .get(format!("http://{bind}/passport/gmail/callback?state=x"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
    // Everything it logged, up to its exit.
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server stops")
        .unwrap();
    let mut logged = Vec::new();
    while let Some(line) = later.recv().await {
        logged.push(line);
    }
    assert!(
        logged.iter().any(|l| l.contains("auth-server stopped")),
        "read to the end: {logged:#?}"
    );
    let warned: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("is not in TRUSTED_PROXIES"))
        .collect();
    assert_eq!(warned.len(), 1, "{logged:#?}");
    assert!(
        warned[0].contains("requests from 127.0.0.1"),
        "{}",
        warned[0]
    );
}
