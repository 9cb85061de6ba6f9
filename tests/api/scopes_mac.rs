//! `gmail_token.scopes` tells the truth even after a hand edit: the service
//! vouches for the lists it writes (`scopes_mac`), checks any other list with
//! Google before it answers from it, corrects the row and records it.

use crate::doctor::run_cli;
use crate::helpers::*;
use auth_server::fake_google::Behaviour;
use reqwest::StatusCode;
use uuid::Uuid;

/// Everything but `calendar.events` (the user).
const ALL_BUT_EVENTS: &[&str] = &[
    "gmail.send",
    "gmail.readonly",
    "gmail.modify",
    "userinfo.email",
    "userinfo.profile",
    "calendar",
];

const EVENTS_URL: &str = "https://www.googleapis.com/auth/calendar.events";

/// Webhooks on, towards a port nobody listens on: announcements stay in the
/// outbox, where the test reads them.
async fn spawn() -> TestApp {
    TestApp::spawn_with(&[
        ("WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        (
            "WEBHOOK_SECRET",
            "webhook-secret-for-tests-0123456789abcdef",
        ),
    ])
    .await
}

/// The edit from the team's Calendar guide, by hand, outside the service.
async fn add_events_by_hand(app: &TestApp, user: Uuid) {
    hand_edit(app, user, &format!("scopes || '[\"{EVENTS_URL}\"]'::jsonb")).await;
}

async fn hand_edit(app: &TestApp, user: Uuid, expression: &str) {
    // The test's own fixed expressions, nothing from outside.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE gmail_token SET scopes = {expression} WHERE user_id = $1"
    )))
    .bind(user)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn status(app: &TestApp, user: Uuid) -> (StatusCode, serde_json::Value) {
    let resp = app.browser(Some(user)).get("/api/passport/gmail").await;
    let code = resp.status();
    (code, resp.json().await.unwrap_or_default())
}

fn stored(row: &gmail_token::TokenRow) -> Vec<String> {
    ScopeSet::from_json(row.scopes.as_ref()).short_names()
}

fn names(list: &[&str]) -> Vec<String> {
    ScopeSet::parse_known(list.iter().copied())
        .unwrap()
        .short_names()
}

async fn corrections(app: &TestApp, user: Uuid) -> Vec<passport_event::EventRow> {
    app.events(user)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::ScopesCorrected)
        .collect()
}

async fn hooks(app: &TestApp, user: Uuid) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT payload FROM webhook_outbox WHERE user_id = $1 AND kind = 'scopes_corrected' ORDER BY id",
    )
    .bind(user)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn corrected_metric(app: &TestApp) -> u64 {
    app.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("passport_scopes_corrected_total "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

use auth_server::scopes::ScopeSet;
use auth_server::store::{gmail_token, passport_event};

#[tokio::test]
async fn a_hand_added_scope_is_caught_before_the_token_api_or_the_status_trust_it() {
    let app = spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL_BUT_EVENTS).await;
    let metric_before = corrected_metric(&app).await;
    add_events_by_hand(&app, user).await;
    assert!(stored(&app.row(user).await.unwrap()).contains(&"calendar.events".to_string()));

    // The access token is still valid: the skill is told the truth at once.
    let (code, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "scope_missing");
    assert_eq!(body["missing"], serde_json::json!(["calendar.events"]));
    assert_eq!(
        body["reauth_url"],
        format!("{}/passport/gmail/connect", app.addr)
    );
    let (code, body) = status(&app, user).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body["missing_scopes"],
        serde_json::json!(["calendar.events"])
    );
    assert_eq!(body["needs_reauth"], true);

    // The row is corrected, with a MAC again; one event, one webhook.
    let row = app.row(user).await.unwrap();
    assert_eq!(stored(&row), names(ALL_BUT_EVENTS));
    assert!(row.scopes_mac.is_some());
    let events = corrections(&app, user).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let before = ScopeSet::from_json(events[0].scopes_before.as_ref());
    let after = ScopeSet::from_json(events[0].scopes_after.as_ref());
    assert!(before
        .short_names()
        .contains(&"calendar.events".to_string()));
    assert_eq!(after.short_names(), names(ALL_BUT_EVENTS));
    let hooks = hooks(&app, user).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["type"], "passport.scopes_corrected");
    assert_eq!(
        hooks[0]["data"]["missing_scopes"],
        serde_json::json!(["calendar.events"])
    );
    assert!(hooks[0]["data"]["previous_scopes"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("calendar.events")));
    assert!(corrected_metric(&app).await > metric_before);
    // Only tokeninfo was asked: no refresh.
    assert_eq!(app.fake.calls("token"), 0);
}

#[tokio::test]
async fn a_removed_scope_and_a_replaced_list_are_corrected_too() {
    let app = spawn().await;
    let all_urls = ScopeSet::parse_known(ALL.iter().copied())
        .unwrap()
        .to_json();
    let edits = [
        // Removes gmail.send, which Google did grant.
        "scopes - 'https://www.googleapis.com/auth/gmail.send'".to_string(),
        // Replaces the whole list.
        format!("'{all_urls}'::jsonb"),
    ];
    for edit in edits {
        let user = Uuid::new_v4();
        app.seed_passport(user, JISOO, ALL_BUT_EVENTS).await;
        hand_edit(&app, user, &edit).await;
        // Status first this time, then the token API: both from Google's truth.
        let (code, body) = status(&app, user).await;
        assert_eq!(code, StatusCode::OK, "{edit}: {body}");
        assert_eq!(
            body["missing_scopes"],
            serde_json::json!(["calendar.events"])
        );
        assert_eq!(
            body["granted_scopes"],
            serde_json::json!(names(ALL_BUT_EVENTS))
        );
        let (code, body, _) = app.token(user, &["gmail.send"]).await;
        assert_eq!(code, StatusCode::OK, "{edit}: {body}");
        let (code, body, _) = app.token(user, &["calendar.events"]).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{edit}: {body}");
        assert_eq!(stored(&app.row(user).await.unwrap()), names(ALL_BUT_EVENTS));
        assert_eq!(corrections(&app, user).await.len(), 1, "{edit}");
        assert_eq!(hooks(&app, user).await.len(), 1, "{edit}");
    }
}

#[tokio::test]
async fn an_edit_seen_after_the_access_token_expired_is_corrected_by_the_refresh() {
    let app = spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL_BUT_EVENTS).await;
    add_events_by_hand(&app, user).await;
    app.expire(user).await;
    let (code, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "scope_missing");
    assert_eq!(app.fake.calls("token"), 1, "one refresh");
    assert_eq!(stored(&app.row(user).await.unwrap()), names(ALL_BUT_EVENTS));
    assert_eq!(corrections(&app, user).await.len(), 1);
    assert_eq!(hooks(&app, user).await.len(), 1);
}

#[tokio::test]
async fn an_adopted_row_is_verified_at_its_first_use_and_never_again() {
    let app = spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    // As the old service left it: right scopes, no MAC.
    sqlx::query("UPDATE gmail_token SET scopes_mac = NULL WHERE user_id = $1")
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();
    let (code, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(app.fake.calls("tokeninfo"), 1, "checked with Google once");
    let row = app.row(user).await.unwrap();
    assert!(row.scopes_mac.is_some(), "vouched for from now on");
    assert_eq!(stored(&row), names(ALL));
    assert!(
        corrections(&app, user).await.is_empty(),
        "nothing was wrong"
    );

    // Verified now: database reads (status, another instance's token API)
    // never ask Google again.
    let (code, _) = status(&app, user).await;
    assert_eq!(code, StatusCode::OK);
    let other = app.sibling(&[]).await;
    let (code, body, _) = other.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(app.fake.calls("tokeninfo"), 1);
    assert_eq!(app.fake.calls("token"), 0);
}

#[tokio::test]
async fn a_row_the_service_wrote_at_consent_is_never_rechecked() {
    let app = spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    browser.reauth(None, JISOO, ALL, true).await;
    let row = app.row(user).await.expect("connected");
    assert!(row.scopes_mac.is_some(), "the consent wrote a MAC");
    let tokeninfo = app.fake.calls("tokeninfo");
    let refreshes = app.fake.calls("token");
    let (code, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = status(&app, user).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        app.fake.calls("tokeninfo"),
        tokeninfo,
        "no check with Google"
    );
    assert_eq!(app.fake.calls("token"), refreshes);
}

#[tokio::test]
async fn google_unavailable_during_the_check_is_upstream_unavailable_and_changes_nothing() {
    let app = spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL_BUT_EVENTS).await;
    add_events_by_hand(&app, user).await;
    app.fake.set_behaviour(Behaviour {
        tokeninfo_unavailable: true,
        ..Default::default()
    });
    let edited = app.row(user).await.unwrap();
    let (code, body, headers) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
    assert!(headers.contains_key("retry-after"));
    let (code, body) = status(&app, user).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
    let page = app.browser(Some(user)).get("/passport/gmail").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    let row = app.row(user).await.unwrap();
    assert_eq!(row.scopes, edited.scopes, "the row is unchanged");
    assert_eq!(row.scopes_mac, None);
    assert!(corrections(&app, user).await.is_empty());

    // Google back: the next request corrects it.
    app.fake.set_behaviour(Behaviour::default());
    let (code, body, _) = app.token(user, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn the_doctor_and_the_report_tell_operators() {
    let app = spawn().await;
    let (edited, adopted) = (Uuid::new_v4(), Uuid::new_v4());
    app.seed_passport(edited, JISOO, ALL_BUT_EVENTS).await;
    app.seed_passport(adopted, MINHO, ALL).await;
    sqlx::query("UPDATE gmail_token SET scopes_mac = NULL WHERE user_id = $1")
        .bind(adopted)
        .execute(&app.db)
        .await
        .unwrap();
    add_events_by_hand(&app, edited).await;

    let report = run_cli(&app, &["report"]).await;
    let count = |name: &str| report_count(&report, name);
    assert_eq!(count("corrected"), "0", "{report}");
    assert_eq!(
        count("unverified"),
        "2",
        "the hand edit leaves its row unverified"
    );

    let doctor = run_cli(&app, &["doctor", "--user", &edited.to_string()]).await;
    assert!(
        doctor.contains("scopes were edited outside the service"),
        "{doctor}"
    );
    assert!(
        doctor.contains("Google's grant lacks calendar.events; the user must press 재인증"),
        "{doctor}"
    );
    assert!(doctor.contains("scopes_edited"), "{doctor}");

    let report = run_cli(&app, &["report"]).await;
    let count = |name: &str| report_count(&report, name);
    assert_eq!(count("corrected"), "1", "{report}");
    assert_eq!(count("unverified"), "1", "{report}");
}

#[tokio::test]
async fn rotate_keys_re_macs_vouched_lists_and_leaves_edited_ones_unverified() {
    use auth_server::crypto::{parse_keys, Field, MacCheck, ScopesOf, TokenCipher};
    let app = spawn().await;
    let old = TokenCipher::new(&parse_keys(KEY_T0).unwrap(), false);
    let (kept, edited) = (Uuid::new_v4(), Uuid::new_v4());
    let scopes = ScopeSet::parse_known(ALL_BUT_EVENTS.iter().copied()).unwrap();
    let list: Vec<&str> = scopes.iter().collect();
    for (user, listed) in [
        (kept, &scopes),
        (edited, &ScopeSet::parse_known(ALL.iter().copied()).unwrap()),
    ] {
        let (access, refresh) = app.fake.seed_grant(JISOO, ALL_BUT_EVENTS).unwrap();
        let sub = app.fake.account(JISOO).unwrap().sub.clone();
        let of = ScopesOf {
            user,
            google_sub: Some(&sub),
            refresh_token: Some(&refresh),
        };
        // Vouched for under the old key `t0`; `edited` claims more than that MAC covers.
        let mac = old.scopes_mac(of, &list).unwrap();
        sqlx::query(
            "INSERT INTO gmail_token (user_id, email, google_sub, access_token, refresh_token, token_type, expires_at, scopes, scopes_mac, status)
             VALUES ($1, $2, $3, $4, $5, 'Bearer', now() + interval '50 minutes', $6, $7, 'active')",
        )
        .bind(user)
        .bind(JISOO)
        .bind(&sub)
        .bind(old.seal(user, Field::AccessToken, &access))
        .bind(old.seal(user, Field::RefreshToken, &refresh))
        .bind(listed.to_json())
        .bind(&mac)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let out = run_cli(&app, &["rotate-keys"]).await;
    assert!(out.contains("2 re-encrypted"), "{out}");
    let row = app.row(kept).await.unwrap();
    let mac = row.scopes_mac.clone().unwrap();
    assert!(mac.starts_with("t1:"), "{mac}");
    let refresh = app.refresh_of(kept).await.unwrap();
    let sub = row.google_sub.clone();
    let of = ScopesOf {
        user: kept,
        google_sub: sub.as_deref(),
        refresh_token: Some(&refresh),
    };
    assert_eq!(
        app.cipher.check_scopes_mac(of, &list, Some(&mac)),
        MacCheck::Valid
    );
    // The edited row keeps its old MAC: rotation never launders an edit.
    let row = app.row(edited).await.unwrap();
    assert!(row.scopes_mac.unwrap().starts_with("t0:"));
    let (code, body, _) = app.token(kept, &["calendar"]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        app.fake.calls("tokeninfo"),
        0,
        "the re-MACed row is trusted"
    );
    let (code, body, _) = app.token(edited, &["calendar.events"]).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.fake.calls("tokeninfo"), 1);
}

/// The value on the line of `auth-server report` that starts with `name`.
fn report_count(report: &str, name: &str) -> String {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}
