//! The token cache: answers without the database, and is invalidated on every
//! instance within milliseconds when a row changes anywhere.

use std::time::{Duration, Instant};

use crate::faults::{DbProxy, Mode};
use crate::helpers::*;
use crate::wait::{wait_for, wait_until};
use reqwest::StatusCode;
use uuid::Uuid;

/// Wait until the instance's cache listener is connected and `user`'s token
/// is cached.
async fn cache_ready(app: &TestApp, user: Uuid) {
    wait_until(
        "the token cache to come on (a token answered with the table away)",
        Duration::from_secs(10),
        async || {
            let _ = app.token(user, &[]).await;
            // A fill succeeds only while the listener is connected.
            sqlx::query("ALTER TABLE gmail_token RENAME TO gmail_token_probe")
                .execute(&app.db)
                .await
                .unwrap();
            let cached = app.token(user, &[]).await.0 == StatusCode::OK;
            sqlx::query("ALTER TABLE gmail_token_probe RENAME TO gmail_token")
                .execute(&app.db)
                .await
                .unwrap();
            cached
        },
    )
    .await;
}

#[tokio::test]
async fn valid_tokens_are_answered_without_the_database() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (access, _) = app.seed_passport(user, JISOO, ALL).await;
    // With the table gone, only the cache can answer. (A loaded machine may
    // drop the cache between the probe and the request — its listener
    // reconnecting empties it — so the probe and the request are retried
    // together; a service without a cache never passes.)
    let (status, body) = wait_for(
        "a token answered from the cache with the table away",
        Duration::from_secs(10),
        async || {
            cache_ready(&app, user).await;
            sqlx::query("ALTER TABLE gmail_token RENAME TO gmail_token_away")
                .execute(&app.db)
                .await
                .unwrap();
            let (status, body, _) = app.token(user, &["calendar.events"]).await;
            sqlx::query("ALTER TABLE gmail_token_away RENAME TO gmail_token")
                .execute(&app.db)
                .await
                .unwrap();
            match status {
                StatusCode::OK => Ok((status, body)),
                _ => Err((status, body)),
            }
        },
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_token"], access);
}

#[tokio::test]
async fn cached_scopes_are_still_checked() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    cache_ready(&app, user).await;
    let (status, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["missing"], serde_json::json!(["calendar.events"]));
}

// The 10 s deadline below proves invalidation only while entries live longer.
const _: () = assert!(auth_server::passport::cache::MAX_AGE.as_secs() >= 20);

/// Poll `app` until `done` says the answer reflects the change; returns how
/// long that took and how many stale answers were given meanwhile.
///
/// The deadline is not a speed target: a cached entry is served for up to
/// `cache::MAX_AGE` (30 s) after it was read, so an answer that changes
/// within 10 s proves that the change notification dropped it.
async fn until_changed(
    app: &TestApp,
    user: Uuid,
    done: impl Fn(StatusCode, &serde_json::Value) -> bool,
) -> (Duration, usize) {
    let start = Instant::now();
    let mut stale = 0;
    wait_for(
        "the change to reach the instance's cache",
        Duration::from_secs(10),
        async || {
            let (status, body, _) = app.token(user, &[]).await;
            if done(status, &body) {
                Ok(())
            } else {
                stale += 1;
                Err((status, body))
            }
        },
    )
    .await;
    (start.elapsed(), stale)
}

#[tokio::test]
async fn a_disconnect_on_another_instance_is_never_served_from_the_cache() {
    let a = TestApp::spawn().await;
    let b = a.sibling(&[]).await;
    let user = Uuid::new_v4();
    a.seed_passport(user, JISOO, ALL).await;
    cache_ready(&a, user).await;
    assert_eq!(a.token(user, &[]).await.0, StatusCode::OK);

    let resp = b
        .client()
        .delete(b.url(&format!("/internal/passport/gmail/users/{user}")))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (latency, stale) = until_changed(&a, user, |s, _| s == StatusCode::NOT_FOUND).await;
    eprintln!("invalidation across instances: {latency:?}, {stale} stale answers");
    // And it stays gone.
    for _ in 0..20 {
        assert_eq!(a.token(user, &[]).await.0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_revocation_written_by_anyone_is_never_served_from_the_cache() {
    let a = TestApp::spawn().await;
    let b = a.sibling(&[]).await;
    let user = Uuid::new_v4();
    a.seed_passport(user, JISOO, ALL).await;
    cache_ready(&a, user).await;
    cache_ready(&b, user).await;
    // Another service (or an operator) marks the connection revoked.
    sqlx::query("UPDATE gmail_token SET status = 'revoked' WHERE user_id = $1")
        .bind(user)
        .execute(&a.db)
        .await
        .unwrap();
    for app in [&a, &b] {
        let (latency, stale) = until_changed(app, user, |s, _| s == StatusCode::CONFLICT).await;
        eprintln!("revocation seen: {latency:?}, {stale} stale answers");
    }
    // A new token stored by a refresh elsewhere replaces the cached one.
    sqlx::query("UPDATE gmail_token SET status = 'active' WHERE user_id = $1")
        .bind(user)
        .execute(&a.db)
        .await
        .unwrap();
    cache_ready(&a, user).await;
    let (status, body, _) = a.token(user, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let old = body["access_token"].as_str().unwrap().to_string();
    // `c` refreshes a token that `a` still finds valid: the seeded token has
    // under 50 min left, within c's refresh margin (and beyond a's).
    let c = a.sibling(&[("TOKEN_REFRESH_MARGIN_SECS", "3000")]).await;
    let (status, body, _) = c.token(user, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = body["access_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, old, "the other instance stored a new token");
    let (latency, stale) = until_changed(&a, user, |s, body| {
        s == StatusCode::OK && body["access_token"] == fresh
    })
    .await;
    eprintln!("new token seen: {latency:?}, {stale} stale answers");
}

fn disconnect_url(app: &TestApp, user: Uuid) -> String {
    app.url(&format!("/internal/passport/gmail/users/{user}"))
}

async fn disconnect(app: &TestApp, user: Uuid) {
    let resp = app
        .client()
        .delete(disconnect_url(app, user))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_instance_never_serves_a_connection_it_has_just_deleted() {
    let app = TestApp::spawn().await;
    let first = Uuid::new_v4();
    app.seed_passport(first, JISOO, ALL).await;
    cache_ready(&app, first).await;
    let mut stale = 0;
    for _ in 0..60 {
        let user = Uuid::new_v4();
        app.seed_passport(user, JISOO, ALL).await;
        assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
        assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
        disconnect(&app, user).await;
        if app.token(user, &[]).await.0 == StatusCode::OK {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "tokens served right after their own disconnect");
}

#[tokio::test]
async fn another_instance_stops_serving_a_deleted_connection_within_the_notify_window() {
    let a = TestApp::spawn().await;
    let b = a.sibling(&[]).await;
    let first = Uuid::new_v4();
    a.seed_passport(first, JISOO, ALL).await;
    cache_ready(&b, first).await;
    let mut windows = Vec::new();
    for _ in 0..20 {
        let user = Uuid::new_v4();
        a.seed_passport(user, JISOO, ALL).await;
        assert_eq!(b.token(user, &[]).await.0, StatusCode::OK);
        assert_eq!(b.token(user, &[]).await.0, StatusCode::OK);
        disconnect(&a, user).await;
        let deleted = Instant::now();
        wait_until(
            "the other instance to drop it",
            Duration::from_secs(10),
            async || b.token(user, &[]).await.0 == StatusCode::NOT_FOUND,
        )
        .await;
        windows.push(deleted.elapsed());
    }
    windows.sort();
    eprintln!(
        "cross-instance window after a disconnect: median {:?}, max {:?} (20 rounds)",
        windows[windows.len() / 2],
        windows[windows.len() - 1]
    );
}

#[tokio::test]
async fn the_cache_goes_off_the_moment_its_listener_connection_is_cut() {
    let proxy = DbProxy::start().await;
    let (_, via) = proxy.fresh_database().await;
    let app = TestApp::spawn_on(via, &[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    cache_ready(&app, user).await;
    // The database hangs and every connection to it is cut: from now on only
    // the cache could answer, and it must not, since it can no longer hear
    // about changes.
    proxy.set(Mode::Stalled);
    proxy.drop_all();
    let cut = Instant::now();
    let token_url = app.url("/internal/passport/gmail/token");
    wait_until(
        "the cache to stop answering",
        Duration::from_secs(15),
        async || {
            let answer = app
                .client()
                .post(&token_url)
                .bearer_auth(INTERNAL_KEY)
                .json(&serde_json::json!({ "user_id": user }))
                .timeout(Duration::from_millis(300))
                .send()
                .await;
            !matches!(answer, Ok(r) if r.status() == StatusCode::OK)
        },
    )
    .await;
    let off_after = cut.elapsed();
    eprintln!("cache off {off_after:?} after its listener connection was cut");
    assert!(
        off_after < Duration::from_secs(2),
        "served from the cache for {off_after:?}"
    );
    proxy.set(Mode::Up);
    cache_ready(&app, user).await;
}

#[tokio::test]
async fn taking_or_giving_back_a_refresh_claim_is_not_announced() {
    let app = TestApp::spawn().await;
    let (claimed, changed) = (Uuid::new_v4(), Uuid::new_v4());
    app.seed_passport(claimed, JISOO, ALL).await;
    app.seed_passport(changed, MINHO, ALL).await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.database_url)
        .await
        .unwrap();
    listener.listen("gmail_token_changed").await.unwrap();
    for claim in ["now() + interval '1 minute'", "NULL"] {
        let sql =
            format!("UPDATE gmail_token SET refresh_claimed_until = {claim} WHERE user_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(claimed)
            .execute(&app.db)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE gmail_token SET email = 'minho2@example.com' WHERE user_id = $1")
        .bind(changed)
        .execute(&app.db)
        .await
        .unwrap();
    // Notifications arrive in commit order: the first is the later change's.
    let first = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(
        first.payload(),
        changed.to_string(),
        "a claim was announced"
    );
}

/// `GET /api/passport/gmail` as `user`: the status code and the body.
async fn status_of(app: &TestApp, user: Uuid) -> (StatusCode, serde_json::Value) {
    let resp = app.browser(Some(user)).get("/api/passport/gmail").await;
    let code = resp.status();
    (code, resp.json().await.unwrap_or_default())
}

/// Run `f` with the `gmail_token` table renamed away (only a cache can answer).
async fn without_table<T>(app: &TestApp, f: impl AsyncFnOnce() -> T) -> T {
    sqlx::query("ALTER TABLE gmail_token RENAME TO gmail_token_away")
        .execute(&app.db)
        .await
        .unwrap();
    let out = f().await;
    sqlx::query("ALTER TABLE gmail_token_away RENAME TO gmail_token")
        .execute(&app.db)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn the_status_is_answered_from_the_token_cache_as_the_database_would() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let (code, from_db) = status_of(&app, user).await;
    assert_eq!(code, StatusCode::OK);
    let from_cache = wait_for(
        "a status answered from the cache with the table away",
        Duration::from_secs(10),
        async || {
            cache_ready(&app, user).await;
            match without_table(&app, async || status_of(&app, user).await).await {
                (StatusCode::OK, body) => Ok(body),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(from_cache, from_db);
    assert_eq!(from_cache["status"], "active");
    assert_eq!(
        from_cache["missing_scopes"],
        serde_json::json!(["calendar", "calendar.events"])
    );
}

#[tokio::test]
async fn a_status_read_from_the_database_fills_the_cache_for_the_token_api() {
    let app = TestApp::spawn().await;
    let (first, user) = (Uuid::new_v4(), Uuid::new_v4());
    app.seed_passport(first, JISOO, ALL).await;
    let (access, _) = app.seed_passport(user, MINHO, ALL).await;
    let body = wait_for(
        "a token answered from what a status request cached",
        Duration::from_secs(10),
        async || {
            // The listener is connected once another user can be cached.
            cache_ready(&app, first).await;
            assert_eq!(status_of(&app, user).await.0, StatusCode::OK);
            match without_table(&app, async || app.token(user, &[]).await).await {
                (StatusCode::OK, body, _) => Ok(body),
                (code, body, _) => Err((code, body)),
            }
        },
    )
    .await;
    assert_eq!(body["access_token"], access);
}

/// Poll the status until `done` holds; the deadline is shorter than
/// `cache::MAX_AGE`, so passing proves the change dropped the cached entry.
async fn until_status(app: &TestApp, user: Uuid, done: impl Fn(&serde_json::Value) -> bool) {
    wait_for(
        "the change to reach the status",
        Duration::from_secs(10),
        async || match status_of(app, user).await {
            (StatusCode::OK, body) if done(&body) => Ok(()),
            other => Err(other),
        },
    )
    .await;
}

#[tokio::test]
async fn the_status_shows_every_change_to_the_row_not_the_cached_entry() {
    let a = TestApp::spawn().await;
    let b = a.sibling(&[]).await;
    let user = Uuid::new_v4();
    a.seed_passport(user, JISOO, ALL).await;

    // An edit by hand of a column no MAC covers.
    cache_ready(&a, user).await;
    sqlx::query("UPDATE gmail_token SET email = 'jisoo.new@example.com' WHERE user_id = $1")
        .bind(user)
        .execute(&a.db)
        .await
        .unwrap();
    until_status(&a, user, |b| b["email"] == "jisoo.new@example.com").await;

    // An edit by hand of the scopes: never shown unverified; Google is asked
    // and the row corrected (an event says so).
    cache_ready(&a, user).await;
    sqlx::query(
        "UPDATE gmail_token SET scopes = scopes - 'https://www.googleapis.com/auth/calendar' WHERE user_id = $1",
    )
    .bind(user)
    .execute(&a.db)
    .await
    .unwrap();
    wait_until(
        "the hand-edited scopes to be checked with Google",
        Duration::from_secs(10),
        async || {
            let _ = status_of(&a, user).await;
            a.events(user)
                .await
                .iter()
                .any(|e| e.kind == auth_server::store::passport_event::EventKind::ScopesCorrected)
        },
    )
    .await;

    // A revocation written by another service.
    cache_ready(&a, user).await;
    sqlx::query("UPDATE gmail_token SET status = 'revoked' WHERE user_id = $1")
        .bind(user)
        .execute(&a.db)
        .await
        .unwrap();
    until_status(&a, user, |b| {
        b["status"] == "revoked" && b["needs_reauth"] == true
    })
    .await;

    // A disconnect on another instance.
    sqlx::query("UPDATE gmail_token SET status = 'active' WHERE user_id = $1")
        .bind(user)
        .execute(&a.db)
        .await
        .unwrap();
    cache_ready(&a, user).await;
    disconnect(&b, user).await;
    until_status(&a, user, |b| b["connected"] == false).await;
}

/// The value of a metric without labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_token_cache_stays_within_its_bound_and_keeps_serving_hot_entries() {
    let app = TestApp::spawn_with(&[("TOKEN_CACHE_MAX_ENTRIES", "100")]).await;
    let hot = Uuid::new_v4();
    let (access, _) = app.seed_passport(hot, JISOO, ALL).await;
    cache_ready(&app, hot).await;
    for _ in 0..300 {
        let user = Uuid::new_v4();
        app.seed_passport(user, MINHO, ALL).await;
        assert_eq!(app.token(user, &[]).await.0, StatusCode::OK);
        assert_eq!(app.token(hot, &[]).await.0, StatusCode::OK);
    }
    let metrics = app.metrics().await;
    let entries = metric(&metrics, "passport_token_cache_entries");
    let evicted = metric(&metrics, "passport_token_cache_evictions_total");
    assert!(entries <= 110.0, "{entries} entries for a bound of 100");
    assert!(evicted >= 150.0, "{evicted} evictions");
    let (code, body, _) = without_table(&app, async || app.token(hot, &[]).await).await;
    assert_eq!(code, StatusCode::OK, "the hot entry was evicted: {body}");
    assert_eq!(body["access_token"], access);
}
