//! A consent whose instance dies between the code exchange and the write: the
//! attempt stays, marked in use, and its replay says "interrupted, start
//! again" instead of losing it silently.

use std::time::Duration;

use crate::faults::{DbProxy, Mode};
use crate::helpers::*;
use crate::wait::wait_until;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use uuid::Uuid;

/// `(attempts not done, of which marked in use)` in `oauth_state`.
async fn attempts(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE used_at IS NOT NULL)
         FROM oauth_state WHERE done_at IS NULL",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// The same callback URL, sent to another instance.
fn on(base: &str, callback: &url::Url) -> url::Url {
    let mut url: url::Url = base.parse().unwrap();
    url.set_path(callback.path());
    url.set_query(callback.query());
    url
}

/// Follow `callback` in the background while Google holds its code exchange
/// for `delay_ms`; returns once the exchange has reached Google.
async fn held_at_google(
    app: &TestApp,
    browser: &Browser,
    callback: &url::Url,
    delay_ms: u64,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: delay_ms,
        ..Behaviour::default()
    });
    let in_flight = tokio::spawn(browser.client.get(callback.clone()).send());
    wait_until(
        "the code exchange to reach Google",
        Duration::from_secs(10),
        async || app.fake.calls("token") >= 1,
    )
    .await;
    in_flight
}

#[tokio::test]
async fn an_instance_killed_during_the_code_exchange_leaves_a_start_again_page() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (mut child, _, addr) = crate::security::spawn_server_with(&app, &[], |_| {}).await;
    let base = format!("http://{addr}");
    app.fake
        .register_redirect_uri(&format!("{base}/passport/gmail/callback"));

    // 재인증 on the instance about to die; Google holds the code exchange.
    let mut browser = app.browser(Some(user));
    browser.app = base.clone();
    let authorize = browser.start(None).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let in_flight = held_at_google(&app, &browser, &cb, 30_000).await;
    child.start_kill().unwrap(); // SIGKILL: no grace, no cleanup
    child.wait().await.unwrap();
    assert!(in_flight.await.unwrap().is_err(), "the instance died");
    app.fake.set_behaviour(Behaviour::default());

    assert_eq!(attempts(&app).await, (1, 1), "the attempt is kept, in use");
    assert!(app.row(user).await.is_none(), "nothing was stored");

    // The browser's back button or reload, on a live instance.
    browser.app = app.addr.clone();
    let replay = browser.callback(&on(&app.addr, &cb)).await;
    assert_eq!(replay.status(), StatusCode::CONFLICT);
    let body = replay.text().await.unwrap();
    assert!(body.contains("중단"), "says it was interrupted:\n{body}");
    assert!(
        body.contains("재인증"),
        "says to press 재인증 again:\n{body}"
    );
    assert_eq!(attempts(&app).await, (1, 1), "a replay changes nothing");

    // Pressing 재인증 again works, and its own attempt is gone afterwards.
    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "connected");
    assert_eq!(
        app.row(user).await.unwrap().status,
        ConnectionStatus::Active
    );
    assert_eq!(
        attempts(&app).await,
        (1, 1),
        "only the interrupted one is left"
    );
    let done = browser.callback(&on(&app.addr, &cb)).await;
    assert_eq!(done.status(), StatusCode::CONFLICT, "still interrupted");

    // Expired, the interrupted attempt goes like any other.
    sqlx::query("UPDATE oauth_state SET expires_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let late = browser.callback(&on(&app.addr, &cb)).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(attempts(&app).await, (0, 0));
}

#[tokio::test]
async fn a_finished_or_refused_callback_is_done_and_its_replay_applies_nothing() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    for (i, allow) in [true, false].into_iter().enumerate() {
        let authorize = browser.start(None).await;
        let cb = browser.decide(&authorize, JISOO, ALL, allow).await;
        assert_eq!(browser.callback(&cb).await.status(), StatusCode::FOUND);
        assert_eq!(
            attempts(&app).await,
            (0, 0),
            "allow={allow}: none in flight"
        );
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM oauth_state WHERE done_at IS NOT NULL AND pkce_verifier = ''",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(done, i as i64 + 1, "kept done, its verifier blanked");
        let before = app.snapshot().await;
        // Its own browser: the current state, calmly; nothing applied.
        let replay = browser.callback(&cb).await;
        assert_eq!(replay.status(), StatusCode::FOUND, "allow={allow}");
        assert_eq!(query_map(&location(&replay))["result"], "already_done");
        assert_eq!(app.snapshot().await, before);
        // Another browser: refused as unknown, as before.
        let replay = app.browser(Some(user)).callback(&cb).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "allow={allow}");
        let body = replay.text().await.unwrap();
        assert!(body.contains("이미 처리되었거나"), "{body}");
    }
}

#[tokio::test]
async fn a_database_lost_during_the_code_exchange_leaves_a_start_again_page() {
    let proxy = DbProxy::start().await;
    let (direct, via_proxy) = proxy.fresh_database().await;
    let app = TestApp::spawn_on(via_proxy, &[]).await;
    let direct = sqlx::PgPool::connect(&direct).await.unwrap();
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let authorize = browser.start(None).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let in_flight = held_at_google(&app, &browser, &cb, 1_000).await;
    // The database goes away while Google answers: the write cannot happen.
    proxy.set(Mode::Down);
    proxy.drop_all();
    let failed = in_flight.await.unwrap().unwrap();
    assert_eq!(
        failed.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the database-unavailable page"
    );
    proxy.set(Mode::Up);
    app.fake.set_behaviour(Behaviour::default());
    let in_use: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oauth_state WHERE used_at IS NOT NULL")
            .fetch_one(&direct)
            .await
            .unwrap();
    assert_eq!(in_use, 1, "the attempt is kept, in use");

    let replay = browser.callback(&cb).await;
    assert_eq!(replay.status(), StatusCode::CONFLICT);
    assert!(replay.text().await.unwrap().contains("중단"));
    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "connected");
    assert_eq!(
        attempts(&app).await,
        (1, 1),
        "only the interrupted one is left"
    );
}
