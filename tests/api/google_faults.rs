//! A slow, failing or misconfigured Google never takes the service down:
//! refreshes hold no database connection while Google answers, a circuit
//! breaker stops calls after repeated failures and one probe reopens them,
//! and a refused OAuth client is reported as ours to fix.

use std::time::{Duration, Instant};

use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::*;
use crate::wait::wait_for;

/// `n` users with an expired token each (their next token request refreshes).
async fn expired_users(app: &TestApp, n: usize) -> Vec<Uuid> {
    let mut users = Vec::new();
    for _ in 0..n {
        let u = Uuid::new_v4();
        app.seed_passport(u, JISOO, ALL).await;
        app.expire(u).await;
        users.push(u);
    }
    users
}

async fn status_api(app: &TestApp, user: Uuid) -> (StatusCode, Duration) {
    let start = Instant::now();
    let resp = app
        .client()
        .get(app.url("/api/passport/gmail"))
        .bearer_auth(session_for(user))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    (resp.status(), start.elapsed())
}

/// A token request for each of `users`, all sent at once; each task yields
/// its answer's status.
fn token_requests_at_once(
    app: &TestApp,
    users: &[Uuid],
) -> Vec<tokio::task::JoinHandle<reqwest::StatusCode>> {
    users
        .iter()
        .map(|u| {
            let (url, user) = (app.url("/internal/passport/gmail/token"), *u);
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .bearer_auth(INTERNAL_KEY)
                    .json(&serde_json::json!({ "user_id": user }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect()
}

#[tokio::test]
async fn refreshes_waiting_on_a_slow_google_leave_the_database_to_everyone_else() {
    let app = TestApp::spawn().await;
    let stuck = expired_users(&app, 25).await;
    let others: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    for u in &others[..10] {
        app.seed_passport(*u, MINHO, ALL).await;
    }
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 3000,
        ..Behaviour::default()
    });
    let refreshes = token_requests_at_once(&app, &stuck);
    // Every refresh is waiting on Google before the others ask.
    wait_for(
        "Google to be asked",
        Duration::from_secs(10),
        async || match app.fake.calls("token.refresh_token.attempt") {
            0 => Err(0),
            n => Ok(n),
        },
    )
    .await;
    let mut slowest = Duration::ZERO;
    for u in &others {
        let (status, took) = status_api(&app, *u).await;
        assert_eq!(status, StatusCode::OK, "status API for an unrelated user");
        slowest = slowest.max(took);
    }
    let ready = app.client().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    eprintln!("slowest of 100 status requests while 25 refreshes wait on Google: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "status requests waited {slowest:?} behind refreshes"
    );
    for r in refreshes {
        assert_eq!(
            r.await.unwrap(),
            StatusCode::OK,
            "every slow refresh still succeeds"
        );
    }
}

#[tokio::test]
async fn no_more_google_calls_at_once_than_the_cap() {
    let app = TestApp::spawn_with(&[("GOOGLE_MAX_CONCURRENT_CALLS", "2")]).await;
    let users = expired_users(&app, 6).await;
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 500,
        ..Behaviour::default()
    });
    let refreshes = token_requests_at_once(&app, &users);
    for r in refreshes {
        assert_eq!(
            r.await.unwrap(),
            StatusCode::OK,
            "every refresh waits its turn"
        );
    }
    assert_eq!(app.fake.calls("token.refresh_token.attempt"), 6);
    assert_eq!(
        app.fake.calls("token.max_in_flight"),
        2,
        "at most the cap at once"
    );
}

#[tokio::test]
async fn a_refused_client_is_our_misconfiguration_not_an_outage() {
    let app = TestApp::spawn().await;
    let users = expired_users(&app, 2).await;
    let before = app.row(users[0]).await.unwrap().access_token;
    app.fake.set_behaviour(Behaviour {
        client_refused: true,
        ..Behaviour::default()
    });
    for u in &users {
        let (status, body, headers) = app.token(*u, &[]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(body["error"], "upstream_misconfigured");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("GOOGLE_CLIENT_SECRET"),
            "{body}"
        );
        assert!(
            !headers.contains_key("retry-after"),
            "retrying will not help"
        );
    }
    assert_eq!(app.row(users[0]).await.unwrap().access_token, before);
    assert_eq!(
        app.row(users[0]).await.unwrap().status,
        ConnectionStatus::Active,
        "not the user's fault: the row is unchanged"
    );
    let text = app.metrics().await;
    assert!(
        text.contains("passport_google_client_refused_total"),
        "{text}"
    );
    let doctor = app
        .client()
        .get(app.url(&format!(
            "/internal/passport/gmail/users/{}/diagnosis",
            users[1]
        )))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    let d: serde_json::Value = doctor.json().await.unwrap();
    assert_eq!(d["cause"]["code"], "wrong_client", "{d}");
}

#[tokio::test]
async fn the_breaker_stops_calls_then_one_success_reopens_them() {
    let app = TestApp::spawn_with(&[
        ("GOOGLE_BREAKER_FAILURES", "2"),
        ("GOOGLE_BREAKER_OPEN_SECS", "2"),
    ])
    .await;
    let users = expired_users(&app, 4).await;
    app.fake.set_behaviour(Behaviour {
        token_unavailable: true,
        ..Behaviour::default()
    });
    for u in &users[..2] {
        let (status, _, _) = app.token(*u, &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let asked = app.fake.calls("token.refresh_token.attempt");
    let (status, body, headers) = app.token(users[2], &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("paused"),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        app.fake.calls("token.refresh_token.attempt"),
        asked,
        "an open breaker does not call Google"
    );

    app.fake.set_behaviour(Behaviour::default());
    let recovered = Instant::now();
    wait_for(
        "a token once Google is back",
        Duration::from_secs(10),
        async || match app.token(users[3], &[]).await.0 {
            StatusCode::OK => Ok(()),
            other => Err(other),
        },
    )
    .await;
    let took = recovered.elapsed();
    eprintln!("first token {took:?} after Google recovered (breaker open 2 s)");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (status, _, _) = app.token(users[2], &[]).await;
    assert_eq!(status, StatusCode::OK, "closed again for everyone");
}

#[tokio::test]
async fn a_half_open_breaker_lets_one_probe_through() {
    let app = TestApp::spawn_with(&[
        ("GOOGLE_BREAKER_FAILURES", "1"),
        ("GOOGLE_BREAKER_OPEN_SECS", "1"),
    ])
    .await;
    let users = expired_users(&app, 11).await;
    app.fake.set_behaviour(Behaviour {
        token_unavailable: true,
        ..Behaviour::default()
    });
    assert_eq!(
        app.token(users[0], &[]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Google is back but slow, so the probe is still out while the others ask.
    app.fake.set_behaviour(Behaviour {
        token_delay_ms: 1500,
        ..Behaviour::default()
    });
    // The breaker's open time passing is what is tested here: let it pass.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let asked = app.fake.calls("token.refresh_token.attempt");
    let racers: Vec<_> = users[1..]
        .iter()
        .map(|u| {
            let (url, user) = (app.url("/internal/passport/gmail/token"), *u);
            tokio::spawn(async move {
                let resp = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(INTERNAL_KEY)
                    .json(&serde_json::json!({ "user_id": user }))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                let retry = resp.headers().contains_key("retry-after");
                (status, retry)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in racers {
        answers.push(r.await.unwrap());
    }
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(
        app.fake.calls("token.refresh_token.attempt") - asked,
        1,
        "one probe: {answers:?}"
    );
    assert_eq!(ok, 1, "only the probe got a token: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, retry)| *s == StatusCode::OK
                || (*s == StatusCode::SERVICE_UNAVAILABLE && *retry)),
        "the rest were told when to retry: {answers:?}"
    );
    assert_eq!(
        app.token(users[1], &[]).await.0,
        StatusCode::OK,
        "closed by the probe"
    );
}
