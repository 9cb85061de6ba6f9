//! The connect / 재인증 flow and every callback outcome.

use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use auth_server::scopes::ScopeSet;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn scopes_of(row: &auth_server::store::gmail_token::TokenRow) -> Vec<String> {
    ScopeSet::from_json(row.scopes.as_ref()).short_names()
}

#[tokio::test]
async fn connect_redirects_to_google_with_every_required_parameter() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));

    let resp = browser
        .connect(Some("https://ro-being.com/settings/items?tab=gmail"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("passport_flow_"))
        .expect("flow cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/passport/gmail/callback"), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "http base URL: no Secure flag ({cookie})"
    );

    let url = location(&resp);
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{}/o/oauth2/v2/auth", app.fake_addr)
    );
    let q = query_map(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["redirect_uri"],
        format!("{}/passport/gmail/callback", app.addr)
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["include_granted_scopes"], "true");
    assert_eq!(q["login_hint"], JISOO);
    let requested = ScopeSet::from_google(&q["scope"]);
    assert_eq!(requested.short_names(), ALL);

    // The state is stored hashed, never raw, with a 10-minute expiry.
    let state = &q["state"];
    let hash = Sha256::digest(state.as_bytes()).to_vec();
    let (stored_user, minutes): (Uuid, f64) = sqlx::query_as(
        "SELECT user_id, extract(epoch from expires_at - now())::float8 / 60 FROM oauth_state WHERE state_hash = $1",
    )
    .bind(&hash)
    .fetch_one(&app.db)
    .await
    .expect("state row keyed by the hash");
    assert_eq!(stored_user, user);
    assert!(
        (9.0..=10.0).contains(&minutes),
        "expires in {minutes} minutes"
    );
    let raw_hits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM oauth_state WHERE position($1 in row_to_json(oauth_state)::text) > 0",
    )
    .bind(state)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(raw_hits, 0, "raw state must not be stored");
}

#[tokio::test]
async fn first_connection_stores_granted_scopes_and_says_connected() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));

    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(
        landed.as_str(),
        "https://ro-being.com/settings/items?passport=gmail&result=connected"
    );
    let row = app.row(user).await.expect("row stored");
    assert_eq!(row.email.as_deref(), Some(JISOO));
    assert_eq!(row.google_sub.as_deref(), Some("110000000000000000001"));
    assert_eq!(row.status, ConnectionStatus::Active);
    assert!(row.refresh_token.is_some() && row.access_token.is_some());
    assert!(row.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::minutes(55));
    let mut stored = scopes_of(&row);
    stored.retain(|s| s != "openid");
    assert_eq!(stored, ALL);
    let kinds: Vec<String> = app
        .events(user)
        .await
        .into_iter()
        .map(|e| e.kind.as_str().to_string())
        .collect();
    assert_eq!(kinds, ["connected", "consent_started"]);
    assert_eq!(app.state_count().await, 0, "the attempt is consumed");
}

#[tokio::test]
async fn reauth_of_a_gmail_only_passport_adds_calendar_and_says_upgraded() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (_, old_refresh) = app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));

    let landed = browser
        .reauth(
            Some("https://ro-being.com/settings/items"),
            JISOO,
            ALL,
            true,
        )
        .await;
    let q = query_map(&landed);
    assert_eq!(q["passport"], "gmail");
    assert_eq!(q["result"], "upgraded");
    assert!(!q.contains_key("missing"));

    let row = app.row(user).await.unwrap();
    let scopes = scopes_of(&row);
    assert!(
        scopes.contains(&"calendar".to_string()) && scopes.contains(&"calendar.events".to_string())
    );
    assert_ne!(
        app.refresh_of(user).await,
        Some(old_refresh.clone()),
        "prompt=consent gave a new refresh token"
    );
    let ev = &app.events(user).await[0];
    assert_eq!(ev.kind, EventKind::Upgraded);
    assert_eq!(
        ScopeSet::from_json(ev.scopes_before.as_ref()).short_names(),
        GMAIL_ONLY,
        "audit keeps the scopes before"
    );

    // The status API agrees: nothing missing any more.
    let status: serde_json::Value = browser
        .get("/api/passport/gmail")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["missing_scopes"], serde_json::json!([]));
    assert_eq!(status["needs_reauth"], false);
}

#[tokio::test]
async fn unticking_calendar_gives_partial_and_keeps_what_was_granted() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (_, _) = app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));

    // The user unticks both Calendar boxes and even the Gmail ones: with
    // include_granted_scopes=true, what was granted before is kept.
    let landed = browser.reauth(None, JISOO, &["gmail.send"], true).await;
    assert_eq!(
        landed.as_str(),
        "https://ro-being.com/settings/items?passport=gmail&result=partial&missing=calendar,calendar.events"
    );
    let row = app.row(user).await.unwrap();
    let mut stored = scopes_of(&row);
    stored.retain(|s| s != "openid");
    assert_eq!(
        stored, GMAIL_ONLY,
        "granted scopes come from Google's answer, not the request"
    );
    let ev = &app.events(user).await[0];
    assert_eq!(ev.kind, EventKind::PartialGrant);
    assert_eq!(
        ev.detail.as_deref(),
        Some("missing: calendar,calendar.events")
    );
}

#[tokio::test]
async fn denying_changes_nothing_but_the_audit() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let before = app.row(user).await.unwrap();
    let browser = app.browser(Some(user));

    let landed = browser.reauth(None, JISOO, ALL, false).await;
    assert_eq!(
        landed.as_str(),
        "https://ro-being.com/settings/items?passport=gmail&result=denied"
    );
    let after = app.row(user).await.unwrap();
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    assert_eq!(before.access_token, after.access_token);
    assert_eq!(before.refresh_token, after.refresh_token);
    assert_eq!(app.events(user).await[0].kind, EventKind::Denied);
}

#[tokio::test]
async fn another_google_account_replaces_the_connection_and_says_account_changed() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));

    let landed = browser.reauth(None, MINHO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "account_changed");
    let row = app.row(user).await.unwrap();
    assert_eq!(row.email.as_deref(), Some(MINHO));
    assert_eq!(row.google_sub.as_deref(), Some("110000000000000000002"));
    let ev = &app.events(user).await[0];
    assert_eq!(ev.kind, EventKind::AccountChanged);
    assert_eq!(ev.email_before.as_deref(), Some(JISOO));
    assert_eq!(ev.email_after.as_deref(), Some(MINHO));
    // The replaced account's grant is revoked at Google.
    assert_eq!(app.fake.calls("revoke"), 1);

    // The item page names both accounts.
    let page = browser
        .get("/passport/gmail?passport=gmail&result=account_changed")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(JISOO) && page.contains(MINHO), "{page}");
}

#[tokio::test]
async fn a_token_answer_without_refresh_token_keeps_the_stored_one() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let (_, old_refresh) = app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    app.fake.set_behaviour(Behaviour {
        omit_refresh_token: true,
        ..Behaviour::default()
    });
    let browser = app.browser(Some(user));

    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let row = app.row(user).await.unwrap();
    assert_eq!(app.refresh_of(user).await, Some(old_refresh.clone()));
    assert!(
        row.refresh_token
            .as_deref()
            .unwrap()
            .starts_with("enc:v1:t1:"),
        "kept, and sealed under the active key"
    );
    assert!(row.last_error.is_none());
}

/// A row as the old service left it: tokens and scopes, no email, no subject.
async fn legacy_row(app: &TestApp, user: Uuid, refresh: &str) {
    let scopes: Vec<String> = GMAIL_ONLY.iter().map(|s| full(s)).collect();
    sqlx::query(
        "INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes) VALUES ($1, 'ya29.legacy', $2, $3)",
    )
    .bind(user)
    .bind(refresh)
    .bind(serde_json::json!(scopes))
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_row_without_an_account_keeps_its_refresh_token_only_for_the_account_google_names() {
    let app = TestApp::spawn().await;
    // Three rows of the old service, without email or subject; Google will
    // send no refresh token with the new consent.
    let (same, other, unknown) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (_, jisoo_refresh) = app.fake.seed_grant(JISOO, GMAIL_ONLY).unwrap();
    let (_, jisoo_refresh_2) = app.fake.seed_grant(JISOO, GMAIL_ONLY).unwrap();
    legacy_row(&app, same, &jisoo_refresh).await;
    legacy_row(&app, other, &jisoo_refresh_2).await;
    legacy_row(&app, unknown, "1//a-token-google-does-not-know").await;
    app.fake.set_behaviour(Behaviour {
        omit_refresh_token: true,
        ..Behaviour::default()
    });
    let no_refresh = |row: &auth_server::store::gmail_token::TokenRow| {
        row.refresh_token.is_none()
            && row
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("no_refresh_token"))
    };

    // Jisoo's own token, Jisoo consents: kept (Google says it is hers).
    let landed = app.browser(Some(same)).reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    assert_eq!(app.refresh_of(same).await, Some(jisoo_refresh));

    // Jisoo's token, Minho consents: another account; Minho's access token
    // is never paired with Jisoo's refresh token, which is revoked.
    let revokes = app.fake.calls("revoke");
    let landed = app
        .browser(Some(other))
        .reauth(None, MINHO, ALL, true)
        .await;
    assert_eq!(query_map(&landed)["result"], "account_changed");
    let row = app.row(other).await.unwrap();
    assert_eq!(row.email.as_deref(), Some(MINHO));
    assert!(no_refresh(&row), "{:?}", row.last_error);
    assert_eq!(app.events(other).await[0].kind, EventKind::AccountChanged);
    assert_eq!(app.fake.calls("revoke"), revokes + 1);

    // A token Google refuses: whose it was cannot be established, so it is
    // not kept; once the new access token lapses, the connection asks for
    // 재인증 (as after any consent without a refresh token).
    app.browser(Some(unknown))
        .reauth(None, MINHO, ALL, true)
        .await;
    let row = app.row(unknown).await.unwrap();
    assert!(no_refresh(&row), "{:?}", row.last_error);
    app.expire(unknown).await;
    let (status, body, _) = app.token(unknown, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "reauth_required", "{body}");
}

/// A row as the old service may have left it, with whatever it wrote for the
/// account (`''` meant "unknown").
async fn adopted_row(
    app: &TestApp,
    user: Uuid,
    email: Option<&str>,
    sub: Option<&str>,
    refresh: Option<&str>,
) {
    let scopes: Vec<String> = GMAIL_ONLY.iter().map(|s| full(s)).collect();
    sqlx::query(
        "INSERT INTO gmail_token (user_id, email, google_sub, access_token, refresh_token, scopes) VALUES ($1, $2, $3, 'ya29.legacy', $4, $5)",
    )
    .bind(user)
    .bind(email)
    .bind(sub)
    .bind(refresh)
    .bind(serde_json::json!(scopes))
    .execute(&app.db)
    .await
    .unwrap();
}

/// The kinds of the webhooks queued for `user`, oldest first.
async fn queued_kinds(app: &TestApp, user: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM webhook_outbox WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// The stored grant works at Google: with the access token lapsed, the token
/// API refreshes it.
async fn grant_works(app: &TestApp, user: Uuid) {
    app.expire(user).await;
    let (status, body, _) = app.token(user, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

const HOOKS: [(&str, &str); 2] = [
    // Nothing listens there (loopback): the rows stay in the outbox.
    ("WEBHOOK_URL", "http://127.0.0.1:9/hooks/passport"),
    (
        "WEBHOOK_SECRET",
        "webhook-secret-for-tests-0123456789abcdef",
    ),
];

#[tokio::test]
async fn a_blank_email_or_subject_names_no_account_and_revokes_nothing() {
    let app = TestApp::spawn_with(&HOOKS).await;
    // Every blank shape the old service left, each holding Jisoo's grant.
    let shapes = [(Some(""), Some("")), (None, Some(" ")), (Some(""), None)];
    let mut users = Vec::new();
    for (email, sub) in shapes {
        let user = Uuid::new_v4();
        let (_, refresh) = app.fake.seed_grant(JISOO, GMAIL_ONLY).unwrap();
        adopted_row(&app, user, email, sub, Some(&refresh)).await;
        users.push(user);
    }
    // Google cannot say whose the stored token is (refreshes fail for now).
    app.fake.set_behaviour(Behaviour {
        refresh_unavailable: true,
        ..Behaviour::default()
    });

    for &user in &users {
        let landed = app.browser(Some(user)).reauth(None, JISOO, ALL, true).await;
        assert_eq!(query_map(&landed)["result"], "upgraded", "{user}");
        assert_eq!(app.events(user).await[0].kind, EventKind::Upgraded);
        assert_eq!(queued_kinds(&app, user).await, ["upgraded"]);
    }
    // Nothing was revoked: Jisoo's new grant (the same account and client
    // as the stored one) is alive.
    assert_eq!(app.fake.calls("revoke"), 0);
    app.fake.set_behaviour(Behaviour::default());
    for &user in &users {
        let row = app.row(user).await.unwrap();
        assert_eq!(row.google_sub.as_deref(), Some("110000000000000000001"));
        assert_eq!(row.email.as_deref(), Some(JISOO));
        grant_works(&app, user).await;
    }

    // The same rows without a refresh token: a first connection of sorts,
    // not an account change.
    for (email, sub) in shapes {
        let user = Uuid::new_v4();
        adopted_row(&app, user, email, sub, None).await;
        let landed = app.browser(Some(user)).reauth(None, MINHO, ALL, true).await;
        assert_eq!(
            query_map(&landed)["result"],
            "upgraded",
            "{email:?} {sub:?}"
        );
        assert_eq!(app.events(user).await[0].kind, EventKind::Upgraded);
        assert_eq!(queued_kinds(&app, user).await, ["upgraded"]);
    }
    assert_eq!(app.fake.calls("revoke"), 0);
}

#[tokio::test]
async fn a_row_with_only_an_email_is_placed_by_googles_subject_not_by_the_address() {
    let app = TestApp::spawn_with(&HOOKS).await;
    let old_address = "jisoo.kim.old@example.com";
    let (same, other, unplaced) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (user, owner) in [(same, JISOO), (other, JISOO), (unplaced, MINHO)] {
        let (_, refresh) = app.fake.seed_grant(owner, GMAIL_ONLY).unwrap();
        adopted_row(&app, user, Some(old_address), None, Some(&refresh)).await;
    }

    // Jisoo's account, whose address changed since: the same account.
    let landed = app.browser(Some(same)).reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    assert_eq!(app.events(same).await[0].kind, EventKind::Upgraded);
    assert_eq!(queued_kinds(&app, same).await, ["upgraded"]);
    assert_eq!(app.fake.calls("revoke"), 0);
    let row = app.row(same).await.unwrap();
    assert_eq!(row.email.as_deref(), Some(JISOO));
    grant_works(&app, same).await;

    // Another subject: another account (Jisoo's grant is revoked).
    let landed = app
        .browser(Some(other))
        .reauth(None, MINHO, ALL, true)
        .await;
    assert_eq!(query_map(&landed)["result"], "account_changed");
    assert_eq!(queued_kinds(&app, other).await, ["account_changed"]);
    assert_eq!(app.fake.calls("revoke"), 1);
    grant_works(&app, other).await;

    // Google cannot say whose the stored token is (Minho's, in fact) and
    // sends no new one: not another account by the address alone, nothing
    // revoked, and the stored token is not carried over either.
    app.fake.set_behaviour(Behaviour {
        refresh_unavailable: true,
        omit_refresh_token: true,
        ..Behaviour::default()
    });
    let landed = app
        .browser(Some(unplaced))
        .reauth(None, MINHO, ALL, true)
        .await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    assert_eq!(app.fake.calls("revoke"), 1);
    let row = app.row(unplaced).await.unwrap();
    assert!(row.refresh_token.is_none(), "not carried over");
    assert!(row
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("no_refresh_token")));
}

#[tokio::test]
async fn a_token_answer_without_scope_is_completed_from_tokeninfo() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.fake.set_behaviour(Behaviour {
        omit_scope: true,
        ..Behaviour::default()
    });
    let browser = app.browser(Some(user));

    let landed = browser
        .reauth(None, JISOO, &["gmail.send", "gmail.readonly"], true)
        .await;
    let q = query_map(&landed);
    assert_eq!(q["result"], "partial");
    assert_eq!(q["missing"], "gmail.modify,calendar,calendar.events");
    assert_eq!(app.fake.calls("tokeninfo"), 1);
    let mut stored = scopes_of(&app.row(user).await.unwrap());
    stored.retain(|s| s != "openid");
    assert_eq!(
        stored,
        [
            "gmail.send",
            "gmail.readonly",
            "userinfo.email",
            "userinfo.profile"
        ]
    );
}

#[tokio::test]
async fn return_to_parameters_are_kept_and_ours_replaced() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let landed = browser
        .reauth(
            Some("https://ro-being.com/items?tab=gmail&result=stale"),
            JISOO,
            ALL,
            true,
        )
        .await;
    assert_eq!(
        landed.as_str(),
        "https://ro-being.com/items?tab=gmail&passport=gmail&result=connected"
    );
}

#[tokio::test]
async fn two_tabs_can_each_finish_their_own_flow() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let first = browser.start(None).await;
    let second = browser.start(None).await;
    let cb2 = browser.decide(&second, JISOO, ALL, true).await;
    let cb1 = browser.decide(&first, JISOO, GMAIL_ONLY, true).await;
    let r2 = browser.callback(&cb2).await;
    assert_eq!(query_map(&location(&r2))["result"], "connected");
    let r1 = browser.callback(&cb1).await;
    assert_eq!(r1.status(), StatusCode::FOUND);
    // include_granted_scopes keeps the Calendar grant of the other tab: the
    // same account and the same list as stored, so nothing changed.
    assert_eq!(query_map(&location(&r1))["result"], "unchanged");
}

#[tokio::test]
async fn post_connect_answers_the_authorize_url_for_scripts() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let resp = browser
        .client
        .post(app.url("/api/passport/gmail/connect"))
        .json(&serde_json::json!({"return_to": "https://ro-being.com/settings/items"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    let authorize = url::Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    assert_eq!(query_map(&authorize)["code_challenge_method"], "S256");
    // The same browser can finish it: the flow cookie was set.
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let done = browser.callback(&cb).await;
    assert_eq!(query_map(&location(&done))["result"], "connected");

    // Without a body the default return target is used.
    let resp = browser
        .client
        .post(app.url("/api/passport/gmail/connect"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_reauth_required_connection_becomes_active_after_consent() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    sqlx::query("UPDATE gmail_token SET status = 'reauth_required', last_error = 'invalid_grant' WHERE user_id = $1")
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();
    let browser = app.browser(Some(user));
    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "connected");
    let row = app.row(user).await.unwrap();
    assert_eq!(row.status, ConnectionStatus::Active);
    assert!(row.last_error.is_none());
}
