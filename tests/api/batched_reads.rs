//! The token API's batched reads: misses that wait together for the
//! database are read by one statement, and each is still answered from its
//! own user's row, with every check the single read had.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::{DbProxy, Mode};
use crate::helpers::*;
use crate::wait::wait_until;
use reqwest::StatusCode;
use uuid::Uuid;

const EVENTS_URL: &str = "https://www.googleapis.com/auth/calendar.events";

/// What one user should be answered.
enum Expect {
    Token(String),
    Missing,
    NotConnected,
}

#[tokio::test]
async fn misses_read_together_are_each_answered_from_their_own_row() {
    let proxy = DbProxy::start().await;
    let (_direct, via_proxy) = proxy.fresh_database().await;
    // One batch at a time: every miss that arrives while it runs joins the next.
    let app = TestApp::spawn_on(via_proxy, &[("DB_READ_BATCHES", "1")]).await;
    let mut users = Vec::new();
    for i in 0..40 {
        let user = Uuid::new_v4();
        let expect = match i % 4 {
            0 => {
                app.seed_passport(user, JISOO, GMAIL_ONLY).await;
                Expect::Missing
            }
            1 => Expect::NotConnected,
            _ => Expect::Token(app.seed_passport(user, MINHO, ALL).await.0),
        };
        users.push((user, expect));
    }
    // A list edited by hand (its MAC no longer vouches for it) in the middle.
    let edited = Uuid::new_v4();
    app.seed_passport(edited, JISOO, GMAIL_ONLY).await;
    // The test's own fixed expression, nothing from outside.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE gmail_token SET scopes = scopes || '[\"{EVENTS_URL}\"]'::jsonb WHERE user_id = $1"
    )))
    .bind(edited)
    .execute(&app.db)
    .await
    .unwrap();
    users.insert(20, (edited, Expect::Missing));

    let gone = Uuid::new_v4();
    app.seed_passport(gone, MINHO, ALL).await;
    let app = Arc::new(app);
    // The database holds every statement: the reads queue up behind the first.
    proxy.set(Mode::Stalled);
    let asks: Vec<_> = users
        .iter()
        .map(|(user, _)| {
            let (app, user) = (Arc::clone(&app), *user);
            tokio::spawn(async move { app.token(user, &["calendar.events"]).await })
        })
        .collect();
    // A caller that gives up while its read waits in a batch.
    let impatient = app
        .client()
        .post(app.url("/internal/passport/gmail/token"))
        .bearer_auth(INTERNAL_KEY)
        .timeout(Duration::from_millis(300))
        .json(&serde_json::json!({"user_id": gone, "scopes": ["calendar.events"]}))
        .send()
        .await;
    assert!(impatient.is_err(), "answered with the database stalled");
    proxy.set(Mode::Up);

    for ((user, expect), ask) in users.iter().zip(asks) {
        let (status, body, _) = ask.await.unwrap();
        match expect {
            Expect::Token(access) => {
                assert_eq!(status, StatusCode::OK, "{user}: {body}");
                assert_eq!(body["access_token"], *access, "{user}: another row's token");
            }
            Expect::Missing => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{user}: {body}");
                assert_eq!(body["missing"], serde_json::json!(["calendar.events"]));
            }
            Expect::NotConnected => {
                assert_eq!(status, StatusCode::NOT_FOUND, "{user}: {body}");
                assert_eq!(body["error"], "not_connected", "{user}");
            }
        }
    }
    // The edit was caught and corrected from Google's answer.
    let row = app.row(edited).await.unwrap();
    let stored = auth_server::scopes::ScopeSet::from_json(row.scopes.as_ref());
    assert!(
        !stored.iter().any(|s| s == EVENTS_URL),
        "the hand-added scope stayed"
    );
    // The caller that left took nothing down: its user is answered next time.
    wait_until(
        "the departed caller's user to be answered",
        Duration::from_secs(10),
        async || app.token(gone, &["calendar.events"]).await.0 == StatusCode::OK,
    )
    .await;
}
