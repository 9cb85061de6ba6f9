//! The item page's banner tells what the service recorded for this user and
//! this browser, once: never what a typed, bookmarked, forged or reloaded
//! `?result=` claims. A finished consent sent again (back, then 계속) lands
//! calmly on the current state; a second tab that changed nothing says so.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

const HOOKS: [(&str, &str); 2] = [
    // Nothing listens there (loopback): the rows stay in the outbox.
    ("WEBHOOK_URL", "http://127.0.0.1:9/hooks/passport"),
    (
        "WEBHOOK_SECRET",
        "webhook-secret-for-tests-0123456789abcdef",
    ),
];

fn item_page(app: &TestApp) -> String {
    format!("{}/passport/gmail", app.addr)
}

async fn html(browser: &Browser, url: &str) -> String {
    let resp = browser.get(url).await;
    assert_eq!(resp.status(), StatusCode::OK, "{url}");
    resp.text().await.unwrap()
}

/// The `Set-Cookie` of `name` in a response.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

async fn outbox_kinds(app: &TestApp, user: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM webhook_outbox WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

const BANNER: &str = "role=\"status\"";

#[tokio::test]
async fn a_typed_stale_or_forged_result_shows_only_the_current_state() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    // Not connected: `?result=upgraded` typed in says nothing of an upgrade.
    for query in [
        "result=upgraded",
        "result=connected",
        "result=unchanged",
        "result=already_done",
        "result=partial&missing=calendar,calendar.events",
        "result=account_changed",
        "result=disconnected",
        "result=error&reason=code_rejected",
    ] {
        let page = html(&browser, &format!("/passport/gmail?passport=gmail&{query}")).await;
        assert!(!page.contains(BANNER), "{query}: no banner without a flash");
        assert!(page.contains("연결되지 않음"), "{query}: the current state");
    }
    // A forged flash cookie (any value, or one signed with another key) is
    // no flash.
    let forged = app
        .client()
        .get(format!(
            "{}?passport=gmail&result=upgraded",
            item_page(&app)
        ))
        .header(
            "cookie",
            format!(
                "access_token={}; passport_result=eyJyIjoidXBncmFkZWQifQ.AAAA",
                session_for(user)
            ),
        )
        .send()
        .await
        .unwrap();
    let removal = set_cookie(&forged, "passport_result").expect("the bad flash is removed");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    let page = forged.text().await.unwrap();
    assert!(!page.contains(BANNER) && !page.contains("권한이 추가되었습니다"));
}

#[tokio::test]
async fn the_upgrade_banner_names_what_was_added_once_and_not_on_reload() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let authorize = browser.start(Some(&item_page(&app))).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let done = browser.callback(&cb).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let flash = set_cookie(&done, "passport_result").expect("the result flash");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/passport/gmail",
        "Max-Age=600",
    ] {
        assert!(flash.contains(attr), "{attr} in {flash}");
    }
    let landed = location(&done);
    assert_eq!(query_map(&landed)["result"], "upgraded");

    let first = browser.get(landed.as_str()).await;
    assert!(set_cookie(&first, "passport_result").is_some_and(|c| c.contains("Max-Age=0")));
    let page = first.text().await.unwrap();
    assert!(page.contains("권한이 추가되었습니다"), "the upgrade banner");
    assert!(
        page.contains("캘린더 보기·관리, 캘린더 일정 보기·편집 권한이 추가되었습니다"),
        "names the permissions the stored grant gained"
    );
    assert!(page.contains("Added: See and manage your calendars, View and edit calendar events."));
    assert!(
        !page.contains("메일 보내기, "),
        "only what was added is named"
    );

    // Reload (or a bookmark of the same address): the state, no banner.
    let again = html(&browser, landed.as_str()).await;
    assert!(!again.contains(BANNER), "a reload repeats nothing");
    assert!(
        again.contains("캘린더 보기·관리"),
        "the permission is listed as granted"
    );
}

#[tokio::test]
async fn a_flash_is_only_for_the_user_and_the_result_it_names() {
    let app = TestApp::spawn().await;
    let (jisoo, minho) = (Uuid::new_v4(), Uuid::new_v4());
    app.seed_passport(jisoo, JISOO, GMAIL_ONLY).await;
    app.seed_passport(minho, MINHO, GMAIL_ONLY).await;
    let browser = app.browser(Some(jisoo));
    let authorize = browser.start(Some(&item_page(&app))).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    let done = browser.callback(&cb).await;
    let cookie = set_cookie(&done, "passport_result").unwrap();
    let value = cookie.split(';').next().unwrap().to_string();
    let with = |user: Uuid, query: &str| {
        app.client()
            .get(format!("{}?passport=gmail&{query}", item_page(&app)))
            .header(
                "cookie",
                format!("access_token={}; {value}", session_for(user)),
            )
            .send()
    };
    // Jisoo's flash in Minho's browser: no banner.
    let page = with(minho, "result=upgraded")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(BANNER), "another user's flash shows nothing");
    // Jisoo's flash with another result typed in: no banner.
    let page = with(jisoo, "result=connected")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(BANNER),
        "the query must agree with the flash"
    );
    // The flash, its user and its result: the banner.
    let page = with(jisoo, "result=upgraded")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("권한이 추가되었습니다"));
}

#[tokio::test]
async fn back_and_continue_after_a_success_lands_calmly_on_the_current_state() {
    let app = TestApp::spawn_with(&HOOKS).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let authorize = browser.start(Some(&item_page(&app))).await;
    let cb = browser.decide(&authorize, JISOO, ALL, true).await;
    assert_eq!(browser.callback(&cb).await.status(), StatusCode::FOUND);
    let after = app.snapshot().await;
    let hooks = outbox_kinds(&app, user).await;
    assert_eq!(hooks, ["upgraded"]);
    let upgraded = format!("{:?}", app.row(user).await.unwrap());

    // Back, then 계속 again on Google's screen: the same state, a new code.
    let again = browser.decide(&authorize, JISOO, ALL, true).await;
    assert_eq!(query_map(&again)["state"], query_map(&cb)["state"]);
    let replay = browser.callback(&again).await;
    assert_eq!(replay.status(), StatusCode::FOUND, "not an error page");
    let landed = location(&replay);
    assert_eq!(landed.path(), "/passport/gmail");
    assert_eq!(query_map(&landed)["result"], "already_done");
    let page = html(&browser, landed.as_str()).await;
    assert!(page.contains("이미 처리되었습니다"), "the calm note");
    assert!(page.contains("Already done"));
    assert!(!page.contains("오류"), "no error");
    assert!(page.contains("캘린더 일정 보기·편집"), "the current state");
    // Nothing applied twice: the row, the events, the attempts, the webhooks.
    assert_eq!(app.snapshot().await, after);
    assert_eq!(format!("{:?}", app.row(user).await.unwrap()), upgraded);
    assert_eq!(outbox_kinds(&app, user).await, hooks);
    // The same address sent again (the old code): calm again, still nothing.
    let twice = browser.callback(&cb).await;
    assert_eq!(query_map(&location(&twice))["result"], "already_done");
    assert_eq!(app.snapshot().await, after);

    // Anyone else sending it, or a forged state, is still refused.
    let other_browser = app.browser(Some(user));
    let refused = other_browser.callback(&again).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("이미 처리되었거나"));
    let stranger = app.browser(Some(Uuid::new_v4()));
    assert_eq!(
        stranger.callback(&again).await.status(),
        StatusCode::BAD_REQUEST
    );
    let mut forged = again.clone();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("state", "Zm9yZ2VkLXN0YXRlLXRoYXQtbmV2ZXItZXhpc3RlZC1h")
        .append_pair("code", "x");
    assert_eq!(
        browser.callback(&forged).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.snapshot().await, after);
}

#[tokio::test]
async fn a_second_tab_whose_consent_changed_nothing_says_so() {
    let app = TestApp::spawn_with(&HOOKS).await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let browser = app.browser(Some(user));
    let first = browser.start(Some(&item_page(&app))).await;
    let second = browser.start(Some(&item_page(&app))).await;
    let cb1 = browser.decide(&first, JISOO, ALL, true).await;
    let cb2 = browser.decide(&second, JISOO, ALL, true).await;
    let r1 = browser.callback(&cb1).await;
    assert_eq!(query_map(&location(&r1))["result"], "upgraded");
    let r2 = browser.callback(&cb2).await;
    let landed = location(&r2);
    assert_eq!(query_map(&landed)["result"], "unchanged");
    let page = html(&browser, landed.as_str()).await;
    assert!(page.contains("바뀐 것이 없습니다"), "says nothing changed");
    assert!(page.contains("이미 모든 권한이 허용되어 있어서"));
    assert!(!page.contains("연결되었습니다") && !page.contains("권한이 추가되었습니다"));

    let kinds: Vec<String> = app
        .events(user)
        .await
        .iter()
        .map(|e| e.kind.as_str().to_string())
        .collect();
    assert_eq!(kinds[0], "unchanged", "audited as unchanged: {kinds:?}");
    assert_eq!(kinds[1], "upgraded", "{kinds:?}");
    assert_eq!(
        outbox_kinds(&app, user).await,
        ["upgraded"],
        "an unchanged consent announces nothing"
    );
    let row = app.row(user).await.unwrap();
    assert_eq!(
        auth_server::scopes::ScopeSet::from_json(row.scopes.as_ref()).short_names(),
        ALL
    );
}

#[tokio::test]
async fn the_disconnect_banner_comes_from_the_disconnect() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));
    // Typed while connected: no "disconnected" banner above a connection.
    let page = html(
        &browser,
        "/passport/gmail?passport=gmail&result=disconnected",
    )
    .await;
    assert!(!page.contains(BANNER) && page.contains(JISOO));
    let resp = browser
        .client
        .post(format!("{}/disconnect", item_page(&app)))
        .header("origin", &app.addr)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    let page = html(&browser, &to).await;
    assert!(page.contains("연결을 해제했습니다"));
    let page = html(&browser, &to).await;
    assert!(!page.contains(BANNER), "once");
}
