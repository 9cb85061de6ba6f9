//! Every refusal of Google's has its own cause, end to end: the token API's
//! `error` and `cause` (and `Retry-After`), the row (marked or not), the
//! audit event, the webhook, the status API, the item page and the doctor;
//! and the errors Google redirects back to the callback with.

use auth_server::fake_google::{AuthorizeRefusal, Behaviour, RefreshRefusal};
use auth_server::store::gmail_token::ConnectionStatus;
use auth_server::store::passport_event::EventKind;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::*;
use crate::webhooks::{spawn_with_hooks, verify, Receiver};

/// What one refusal must lead to.
struct Expect {
    status: StatusCode,
    error: &'static str,
    cause: &'static str,
    /// The connection is marked `reauth_required` (the user or their admin acts).
    marked: bool,
    /// The doctor's cause code.
    doctor: &'static str,
    /// Words of the item page (marked) or of the doctor's fix (not marked).
    words: &'static str,
}

fn refusing(r: RefreshRefusal) -> Behaviour {
    Behaviour {
        refresh_refusal: Some(r),
        ..Behaviour::default()
    }
}

pub(crate) async fn status_api(app: &TestApp, user: Uuid) -> serde_json::Value {
    let resp = app
        .client()
        .get(app.url("/api/passport/gmail"))
        .bearer_auth(session_for(user))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

pub(crate) async fn diagnose(app: &TestApp, user: Uuid) -> serde_json::Value {
    let resp = app
        .client()
        .get(app.url(&format!("/internal/passport/gmail/users/{user}/diagnosis")))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn outbox_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_outbox")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Seed a connection with an expired token, let Google refuse its refresh,
/// and check every place the cause shows.
async fn refused_end_to_end(refusal: RefreshRefusal, want: Expect) {
    let receiver = Receiver::start().await;
    let app = spawn_with_hooks(&receiver, &[]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake.set_behaviour(refusing(refusal));

    let (status, body, headers) = app.token(user, &["calendar"]).await;
    assert_eq!(status, want.status, "{body}");
    assert_eq!(body["error"], want.error, "{body}");
    assert_eq!(body["cause"], want.cause, "{body}");
    assert!(!body.to_string().contains("1//"), "no token in {body}");

    let row = app.row(user).await.unwrap();
    let event = &app.events(user).await[0];
    assert_eq!(event.error_code.as_deref(), Some(want.cause), "{event:?}");
    let st = status_api(&app, user).await;
    let page = app
        .browser(Some(user))
        .get("/passport/gmail")
        .await
        .text()
        .await
        .unwrap();
    if want.marked {
        assert!(headers.get("retry-after").is_none());
        assert!(body["reauth_url"].is_string(), "{body}");
        assert_eq!(row.status, ConnectionStatus::ReauthRequired);
        assert!(
            row.last_error.as_deref().unwrap().starts_with(want.cause),
            "{:?}",
            row.last_error
        );
        assert_eq!(event.kind, EventKind::ReauthRequired);
        let hits = receiver
            .wait_for("the reauth_required webhook", |h| !h.is_empty())
            .await;
        let hook = verify(&hits[0]);
        assert_eq!(hook["type"], "passport.reauth_required");
        assert_eq!(hook["data"]["cause_code"], want.cause, "{hook}");
        assert!(
            hook["data"]["cause"]
                .as_str()
                .unwrap()
                .starts_with(want.cause),
            "{hook}"
        );
        assert_eq!(st["needs_reauth"], true, "{st}");
        assert_eq!(st["cause"], want.cause, "{st}");
        assert!(
            page.contains(&format!("data-cause=\"{}\"", want.cause)),
            "{page}"
        );
        assert!(page.contains(want.words), "`{}` in {page}", want.words);
    } else {
        assert_eq!(row.status, ConnectionStatus::Active, "not marked");
        assert_eq!(event.kind, EventKind::RefreshFailed);
        assert_eq!(outbox_count(&app).await, 0, "nothing announced");
        assert_eq!(st["needs_reauth"], false, "{st}");
        assert!(st.get("cause").is_none(), "{st}");
        assert!(!page.contains("data-cause"), "{page}");
    }

    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], want.doctor, "{d}");
    if !want.marked {
        let fix = format!("{} {}", d["cause"]["fix_ko"], d["cause"]["fix_en"]);
        assert!(fix.contains(want.words), "`{}` in {fix}", want.words);
    }
}

#[tokio::test]
async fn invalid_grant_marks_the_connection_as_today() {
    refused_end_to_end(
        RefreshRefusal::InvalidGrant,
        Expect {
            status: StatusCode::CONFLICT,
            error: "reauth_required",
            cause: "invalid_grant",
            marked: true,
            doctor: "grant_revoked_or_expired",
            words: "Google이 연결을 끊었습니다",
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_rapt_is_a_workspace_sign_in_again() {
    refused_end_to_end(
        RefreshRefusal::InvalidRapt,
        Expect {
            status: StatusCode::CONFLICT,
            error: "reauth_required",
            cause: "invalid_rapt",
            marked: true,
            doctor: "invalid_rapt",
            words: "다시 로그인해야 합니다",
        },
    )
    .await;
}

#[tokio::test]
async fn admin_policy_enforced_says_the_admin_must_allow_first() {
    refused_end_to_end(
        RefreshRefusal::AdminPolicyEnforced,
        Expect {
            status: StatusCode::CONFLICT,
            error: "reauth_required",
            cause: "admin_policy_enforced",
            marked: true,
            doctor: "admin_policy_enforced",
            words: "허용되기 전에는 재인증을 눌러도 해결되지 않습니다",
        },
    )
    .await;
}

#[tokio::test]
async fn org_internal_asks_for_an_account_of_the_organisation() {
    refused_end_to_end(
        RefreshRefusal::OrgInternal,
        Expect {
            status: StatusCode::CONFLICT,
            error: "reauth_required",
            cause: "org_internal",
            marked: true,
            doctor: "org_internal",
            words: "그 조직의 계정을 골라",
        },
    )
    .await;
}

#[tokio::test]
async fn access_denied_at_refresh_marks_the_connection() {
    refused_end_to_end(
        RefreshRefusal::AccessDenied,
        Expect {
            status: StatusCode::CONFLICT,
            error: "reauth_required",
            cause: "access_denied",
            marked: true,
            doctor: "access_denied",
            words: "접근을 거부했습니다",
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_scope_is_ours_and_marks_nothing() {
    refused_end_to_end(
        RefreshRefusal::InvalidScope,
        Expect {
            status: StatusCode::BAD_GATEWAY,
            error: "upstream_misconfigured",
            cause: "invalid_scope",
            marked: false,
            doctor: "invalid_scope",
            words: "GMAIL_PASSPORT_SCOPES",
        },
    )
    .await;
}

#[tokio::test]
async fn unauthorized_and_deleted_clients_are_client_misconfigured() {
    for r in [
        RefreshRefusal::UnauthorizedClient,
        RefreshRefusal::DeletedClient,
    ] {
        refused_end_to_end(
            r,
            Expect {
                status: StatusCode::BAD_GATEWAY,
                error: "upstream_misconfigured",
                cause: "client_misconfigured",
                marked: false,
                doctor: "wrong_client",
                words: "GOOGLE_CLIENT_SECRET",
            },
        )
        .await;
    }
}

#[tokio::test]
async fn rate_limits_are_told_with_retry_after_and_mark_nothing() {
    for r in [
        RefreshRefusal::RateLimited,
        RefreshRefusal::RateLimitExceeded,
        RefreshRefusal::UserRateLimitExceeded,
    ] {
        refused_end_to_end(
            r,
            Expect {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "upstream_unavailable",
                cause: "rate_limited",
                marked: false,
                doctor: "rate_limited",
                words: "Retry-After",
            },
        )
        .await;
    }
}

#[tokio::test]
async fn googles_retry_after_is_honoured_and_a_rate_limit_is_not_retried() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake
        .set_behaviour(refusing(RefreshRefusal::RateLimited));
    let (status, body, headers) = app.token(user, &["calendar"]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "30", "Google's own Retry-After");
    assert_eq!(
        app.fake.calls("token.refresh_token.refused"),
        1,
        "asked once"
    );
}

#[tokio::test]
async fn a_rate_limit_does_not_pause_calls_to_google() {
    let app = TestApp::spawn_with(&[("GOOGLE_BREAKER_FAILURES", "2")]).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake
        .set_behaviour(refusing(RefreshRefusal::RateLimitExceeded));
    for _ in 0..3 {
        let (status, body, _) = app.token(user, &["calendar"]).await;
        assert_eq!(body["cause"], "rate_limited", "{body}");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(app.fake.calls("token.refresh_token.refused"), 3);
    app.fake.set_behaviour(Behaviour::default());
    let (status, body, _) = app.token(user, &["calendar"]).await;
    assert_eq!(status, StatusCode::OK, "the breaker stayed closed: {body}");
}

#[tokio::test]
async fn google_down_is_google_unavailable() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    app.expire(user).await;
    app.fake.set_behaviour(Behaviour {
        refresh_unavailable: true,
        ..Behaviour::default()
    });
    let (status, body, headers) = app.token(user, &["calendar"]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["cause"], "google_unavailable", "{body}");
    assert!(headers.get("retry-after").is_some());
    let event = &app.events(user).await[0];
    assert_eq!(event.kind, EventKind::RefreshFailed);
    assert_eq!(event.error_code.as_deref(), Some("google_unavailable"));
}

/// The callback URL Google would send the browser to with these parameters,
/// for a consent started by `browser`.
async fn google_redirect(browser: &Browser, params: &[(&str, &str)]) -> url::Url {
    let authorize = browser.start(None).await;
    let q = query_map(&authorize);
    let mut cb = url::Url::parse(&q["redirect_uri"]).unwrap();
    cb.query_pairs_mut()
        .extend_pairs(params)
        .append_pair("state", &q["state"]);
    cb
}

/// Follow a callback and the item page it leads to; returns the reason and
/// the page.
async fn callback_banner(app: &TestApp, browser: &Browser, cb: &url::Url) -> (String, String) {
    let resp = browser.callback(cb).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let landed = query_map(&location(&resp));
    assert_eq!(landed["result"], "error", "{landed:?}");
    let page = browser
        .get("/passport/gmail?passport=gmail&result=error")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(app.state_count().await, 0, "the attempt is done");
    (landed["reason"].clone(), page)
}

#[tokio::test]
async fn callback_errors_get_their_own_reason_and_banner() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    for (params, reason, words) in [
        (
            vec![("error", "admin_policy_enforced")],
            "admin_policy_enforced",
            "관리자에게 이 앱을 허용해 달라고",
        ),
        (
            vec![("error", "org_internal")],
            "org_internal",
            "그 조직의 계정을 골라",
        ),
        (
            vec![("error", "invalid_scope")],
            "invalid_scope",
            "ro-being 고객센터에 알려 주세요",
        ),
        (
            vec![("error", "server_error")],
            "google_error",
            "Google과 통신하는 중에 문제가 생겨",
        ),
    ] {
        let cb = google_redirect(&browser, &params).await;
        let (got, page) = callback_banner(&app, &browser, &cb).await;
        assert_eq!(got, reason, "{params:?}");
        assert!(page.contains(words), "`{words}` in {page}");
    }
    assert!(app.row(user).await.is_none(), "nothing stored");
}

#[tokio::test]
async fn admin_policy_redirected_as_access_denied_is_not_a_cancel() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    app.fake.set_behaviour(Behaviour {
        authorize_refusal: Some(AuthorizeRefusal::AdminPolicyRedirect),
        ..Behaviour::default()
    });
    let browser = app.browser(Some(user));
    let authorize = browser.start(None).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let q = query_map(&cb);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_subtype"], "admin_policy_enforced");
    let (reason, page) = callback_banner(&app, &browser, &cb).await;
    assert_eq!(reason, "admin_policy_enforced");
    assert!(page.contains("관리자가 이 앱을 막았습니다"), "{page}");
    assert!(!page.contains("취소했습니다"), "not told as a cancel");
    let kinds: Vec<_> = app.events(user).await.iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&EventKind::Denied), "{kinds:?}");
}

#[tokio::test]
async fn policy_refusals_google_shows_on_its_own_page_never_come_back() {
    let app = TestApp::spawn().await;
    let browser = app.browser(Some(Uuid::new_v4()));
    for (refusal, status, code) in [
        (
            AuthorizeRefusal::AdminPolicyEnforced,
            StatusCode::BAD_REQUEST,
            "Error 400: admin_policy_enforced",
        ),
        (
            AuthorizeRefusal::OrgInternal,
            StatusCode::FORBIDDEN,
            "Error 403: org_internal",
        ),
    ] {
        app.fake.set_behaviour(Behaviour {
            authorize_refusal: Some(refusal),
            ..Behaviour::default()
        });
        let authorize = browser.start(None).await;
        let resp = browser.get(authorize.as_str()).await;
        assert_eq!(resp.status(), status);
        assert!(resp.headers().get("location").is_none(), "no redirect");
        assert!(resp.text().await.unwrap().contains(code));
    }
}

#[tokio::test]
async fn the_doctor_says_the_account_changed_instead_of_works() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "works", "{d}");

    let browser = app.browser(Some(user));
    let landed = browser.reauth(None, MINHO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "account_changed");

    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "account_changed", "{d}");
    let account = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "account")
        .unwrap();
    assert_eq!(account["outcome"], "warning", "{d}");
    let en = account["en"].as_str().unwrap();
    assert!(en.contains(JISOO) && en.contains(MINHO), "{en}");
    for c in d["checks"].as_array().unwrap() {
        assert_ne!(c["outcome"], "problem", "the rest passes: {d}");
    }

    // A problem to fix still wins over the account change.
    app.fake.revoke_account(MINHO);
    let d = diagnose(&app, user).await;
    assert_eq!(d["cause"]["code"], "grant_revoked_or_expired", "{d}");
}
