//! Database budgets: a locked table, a stalled or a downed database answer
//! `503 database_unavailable` (JSON, or the 503 page) with `Retry-After`
//! within the issue's ~5 s, `/readyz` answers within 1 s, and the service
//! recovers without a restart.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::faults::{DbProxy, Mode};
use crate::helpers::*;
use crate::wait::wait_until;

/// The bound for an answer when the database cannot do the work.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// The bound for `/readyz`, whatever the database does.
const READY_WITHIN: Duration = Duration::from_secs(1);
/// Where the client gives up (well past the bounds, below the 30 s request
/// timeout), so that a hang fails the test instead of stalling it.
const CLIENT_GIVES_UP: Duration = Duration::from_secs(12);

/// One answer: status, `Retry-After`, content type, body, and how long it took.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: String,
    body: String,
    took: Duration,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `503 {"error":"database_unavailable"}` with `Retry-After`, within 5 s.
    fn assert_database_unavailable(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {self:?}"
        );
        assert_eq!(
            self.json()["error"],
            "database_unavailable",
            "{what}: {self:?}"
        );
        assert!(
            self.retry_after.is_some(),
            "{what}: no Retry-After: {self:?}"
        );
        assert!(self.took < ANSWER_WITHIN, "{what}: took {:?}", self.took);
    }

    /// The 503 page (HTML, "잠시 후 다시 시도해 주세요") with `Retry-After`, within 5 s.
    fn assert_unavailable_page(&self, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {self:?}"
        );
        assert!(
            self.content_type.starts_with("text/html"),
            "{what}: {self:?}"
        );
        assert!(
            self.body.contains("잠시 후 다시 시도해 주세요"),
            "{what}: {self:?}"
        );
        assert!(
            self.retry_after.is_some(),
            "{what}: no Retry-After: {self:?}"
        );
        assert!(self.took < ANSWER_WITHIN, "{what}: took {:?}", self.took);
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let resp = req.timeout(CLIENT_GIVES_UP).send().await;
    let took = started.elapsed();
    let resp = match resp {
        Ok(r) => r,
        Err(e) => panic!("no answer within {CLIENT_GIVES_UP:?} (after {took:?}): {e}"),
    };
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry_after, content_type) = (header(RETRY_AFTER), header(CONTENT_TYPE));
    Answer {
        status: resp.status(),
        retry_after,
        content_type: content_type.unwrap_or_default(),
        body: resp.text().await.unwrap_or_default(),
        took,
    }
}

fn token_request(app: &TestApp, user: Uuid) -> reqwest::RequestBuilder {
    app.client()
        .post(app.url("/internal/passport/gmail/token"))
        .bearer_auth(INTERNAL_KEY)
        .json(&serde_json::json!({"user_id": user, "scopes": ["calendar.events"]}))
}

fn status_request(app: &TestApp, user: Uuid) -> reqwest::RequestBuilder {
    app.client()
        .get(app.url("/api/passport/gmail"))
        .bearer_auth(session_for(user))
}

fn page_request(app: &TestApp, user: Uuid) -> reqwest::RequestBuilder {
    app.browser(Some(user))
        .client
        .get(app.url("/passport/gmail"))
}

fn ready_request(app: &TestApp) -> reqwest::RequestBuilder {
    app.client().get(app.url("/readyz"))
}

/// The token API, the status API and the item page all answer 200 again.
async fn wait_for_recovery(app: &TestApp, user: Uuid) {
    wait_until(
        "the service to answer normally again",
        Duration::from_secs(30),
        async || {
            answer(token_request(app, user)).await.status == StatusCode::OK
                && answer(status_request(app, user)).await.status == StatusCode::OK
                && answer(page_request(app, user)).await.status == StatusCode::OK
                && answer(ready_request(app)).await.status == StatusCode::OK
        },
    )
    .await;
}

/// With `gmail_token` held in `ACCESS EXCLUSIVE` mode by another
/// connection, the token API (uncached user), the status API and the item
/// page answer 503 within 5 s; all is normal once the lock is released.
async fn a_locked_gmail_token_answers_503(settings: &[(&str, &str)], what: &str) {
    let app = TestApp::spawn_with(settings).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    // Another writer (a migration, an operator's ALTER) holds the table.
    let mut locker = PgConnection::connect(&app.database_url).await.unwrap();
    locker.execute("BEGIN").await.unwrap();
    locker
        .execute("LOCK TABLE gmail_token IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let (token, status, page) = tokio::join!(
        answer(token_request(&app, user)),
        answer(status_request(&app, user)),
        answer(page_request(&app, user)),
    );
    eprintln!(
        "{what}: token {:?} in {:?}, status {:?} in {:?}, page {:?} in {:?}",
        token.status, token.took, status.status, status.took, page.status, page.took
    );
    token.assert_database_unavailable(&format!("{what}: token API, uncached user"));
    status.assert_database_unavailable(&format!("{what}: status API"));
    page.assert_unavailable_page(&format!("{what}: item page"));

    locker.execute("ROLLBACK").await.unwrap();
    wait_for_recovery(&app, user).await;
}

#[tokio::test]
async fn a_locked_gmail_token_answers_503_database_unavailable_then_recovers() {
    // The lock timeout (SQLSTATE 55P03) ends the wait.
    a_locked_gmail_token_answers_503(&[], "locked gmail_token").await;
}

#[tokio::test]
async fn a_statement_over_its_timeout_answers_503_database_unavailable() {
    // The statement timeout (SQLSTATE 57014) ends the wait first.
    let settings = [
        ("DB_LOCK_TIMEOUT_MS", "60000"),
        ("DB_STATEMENT_TIMEOUT_MS", "1000"),
    ];
    a_locked_gmail_token_answers_503(&settings, "statement timeout").await;
}

/// The app through a proxy, with one connected user seeded while it is up.
async fn behind_proxy() -> (DbProxy, TestApp, Uuid) {
    let proxy = DbProxy::start().await;
    let (_direct, via_proxy) = proxy.fresh_database().await;
    let app = TestApp::spawn_on(via_proxy, &[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    (proxy, app, user)
}

/// The token and status APIs answer 503 `database_unavailable` within 5 s,
/// `/readyz` 503 within 1 s.
async fn assert_unavailable(app: &TestApp, user: Uuid, what: &str) {
    let (token, status, ready) = tokio::join!(
        answer(token_request(app, user)),
        answer(status_request(app, user)),
        answer(ready_request(app)),
    );
    eprintln!(
        "{what}: token {:?} in {:?}, status {:?} in {:?}, readyz {:?} in {:?}",
        token.status, token.took, status.status, status.took, ready.status, ready.took
    );
    token.assert_database_unavailable(&format!("{what}: token API, uncached user"));
    status.assert_database_unavailable(&format!("{what}: status API"));
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {ready:?}"
    );
    assert!(
        ready.took < READY_WITHIN,
        "{what}: /readyz took {:?}",
        ready.took
    );
}

#[tokio::test]
async fn a_stalled_database_answers_503_database_unavailable_then_recovers() {
    let (proxy, app, user) = behind_proxy().await;
    proxy.set(Mode::Stalled);
    assert_unavailable(&app, user, "stalled database").await;
    proxy.set(Mode::Up);
    wait_for_recovery(&app, user).await;
}

#[tokio::test]
async fn a_database_down_answers_503_database_unavailable_then_recovers() {
    let (proxy, app, user) = behind_proxy().await;
    proxy.set(Mode::Down);
    proxy.drop_all();
    assert_unavailable(&app, user, "database down").await;
    proxy.set(Mode::Up);
    wait_for_recovery(&app, user).await;
}
