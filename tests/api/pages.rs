//! The pages' way forward, titles, the disconnect confirmation and the
//! static files: every error page offers the one action that helps, the
//! sign-in-needed page leads to ro-being's sign-in and back, 연결 해제 asks
//! first, and the stylesheet goes out compressed under a hashed, immutable name.

use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

const LOGIN: &str = "https://ro-being.com/login";

/// The `href` of the page's primary button, unescaped; `None` without one.
fn primary_href(html: &str) -> Option<String> {
    let at = html.find("class=\"button primary\" href=\"")?;
    let rest = &html[at + "class=\"button primary\" href=\"".len()..];
    let end = rest.find('"').unwrap();
    Some(unescape(&rest[..end]))
}

/// An attribute value as the browser reads it (askama escapes `&`, quotes,
/// `<` and `>`, as named or numeric references).
fn unescape(attr: &str) -> String {
    let mut out = String::new();
    let mut rest = attr;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').expect("a complete reference") + i;
        let name = &rest[i + 1..end];
        let c = match name {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            n if n.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).unwrap()).unwrap()
            }
            n if n.starts_with('#') => char::from_u32(n[1..].parse().unwrap()).unwrap(),
            n => panic!("unknown reference &{n};"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The text of `<title>`.
fn title(html: &str) -> String {
    let start = html.find("<title>").expect("a <title>") + "<title>".len();
    let end = html[start..].find("</title>").unwrap();
    html[start..start + end].to_string()
}

#[tokio::test]
async fn the_sign_in_page_leads_to_login_url_and_back_to_the_page_asked_for() {
    let app = TestApp::spawn_with(&[("LOGIN_URL", LOGIN)]).await;
    let anon = app.browser(None);
    let resp = anon.get("/passport/gmail?passport=gmail").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = resp.text().await.unwrap();
    assert!(
        title(&html).starts_with("로그인이 필요합니다"),
        "{}",
        title(&html)
    );
    let href = primary_href(&html).expect("a sign-in button");
    let url = url::Url::parse(&href).unwrap();
    assert_eq!(url.origin(), url::Url::parse(LOGIN).unwrap().origin());
    assert_eq!(url.path(), "/login");
    let q = query_map(&url);
    assert_eq!(
        q.get("return_to").map(String::as_str),
        Some(app.url("/passport/gmail?passport=gmail").as_str()),
        "the default return parameter is return_to, with the page asked for"
    );
    assert!(html.contains(">로그인 <span"), "the button says 로그인");

    // A form sent without a session comes back to the inventory page.
    let resp = anon
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .header("origin", &app.addr)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let href = primary_href(&resp.text().await.unwrap()).unwrap();
    let q = query_map(&url::Url::parse(&href).unwrap());
    assert_eq!(q["return_to"], app.settings.inventory_url.as_str());
}

#[tokio::test]
async fn the_return_parameter_is_named_by_its_setting() {
    let app = TestApp::spawn_with(&[
        ("LOGIN_URL", "https://ro-being.com/login?app=web"),
        ("LOGIN_RETURN_PARAM", "next"),
    ])
    .await;
    let html = app
        .browser(None)
        .get("/passport/gmail")
        .await
        .text()
        .await
        .unwrap();
    let url = url::Url::parse(&primary_href(&html).unwrap()).unwrap();
    let q = query_map(&url);
    assert_eq!(q["app"], "web", "LOGIN_URL's own query is kept");
    assert_eq!(q["next"], app.url("/passport/gmail"));
    assert!(!q.contains_key("return_to"));
}

#[tokio::test]
async fn without_login_url_the_sign_in_page_says_where_and_reloads_nothing() {
    let app = TestApp::spawn().await;
    let resp = app.browser(None).get("/passport/gmail").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("로그인이 필요합니다"));
    assert_eq!(primary_href(&html), None, "no button that reloads the 401");
    assert!(!html.contains("href=\"/passport/gmail\""));
    assert!(html.contains("ro-being 앱이나 웹사이트에서 로그인한 뒤"));
}

#[tokio::test]
async fn a_bad_login_setting_stops_the_start_with_its_name() {
    for (key, value) in [
        ("LOGIN_URL", "ftp://ro-being.com/login"),
        ("LOGIN_URL", "not a url"),
        ("LOGIN_RETURN_PARAM", "next&evil=1"),
    ] {
        let mut pairs = vec![
            ("DATABASE_URL", "postgres://x@127.0.0.1/x".to_string()),
            ("PUBLIC_BASE_URL", "https://auth.ro-being.com".to_string()),
            ("GOOGLE_CLIENT_ID", CLIENT_ID.to_string()),
            ("GOOGLE_CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("SESSION_JWT_SECRET", JWT_SECRET.to_string()),
            ("INTERNAL_API_KEYS", INTERNAL_KEY.to_string()),
            ("TOKEN_ENCRYPTION_KEYS", KEY_T1.to_string()),
        ];
        pairs.push((key, value.to_string()));
        let err = auth_server::Settings::from_pairs(pairs).unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.contains(key)),
            "{key}={value}: {:?}",
            err.problems
        );
    }
}

#[tokio::test]
async fn each_error_page_has_its_title_and_its_action() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));

    // 404: open the passport.
    let resp = browser.get("/nowhere").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("페이지를 찾을 수 없습니다"));
    assert_eq!(primary_href(&html).as_deref(), Some("/passport/gmail"));
    assert!(html.contains("Gmail 패스포트 열기"));

    // 400: back to the passport.
    let resp = browser.get("/passport/gmail?a=1&a=2").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("잘못된 요청입니다"));
    assert_eq!(primary_href(&html).as_deref(), Some("/passport/gmail"));

    // 400, a used or unknown consent: back to the passport.
    let resp = browser
        .get("/passport/gmail/callback?state=nope&code=x")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("이미 처리되었거나"));
    assert!(html.contains("Gmail 패스포트로 돌아가기"));

    // 403 cross-site: back to the passport, where the button is.
    let resp = browser
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("다른 사이트에서 온 요청입니다"));
    assert_eq!(primary_href(&html).as_deref(), Some("/passport/gmail"));
    assert!(app.row(user).await.is_some());
}

#[tokio::test]
async fn disconnect_asks_first_and_the_post_still_needs_our_origin() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    app.seed_passport(user, JISOO, ALL).await;
    let browser = app.browser(Some(user));

    let item = browser.get("/passport/gmail").await.text().await.unwrap();
    assert!(item.contains("href=\"/passport/gmail/disconnect\""));
    assert!(
        !item.contains("method=\"post\""),
        "the item page itself disconnects nothing"
    );

    let resp = browser.get("/passport/gmail/disconnect").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(title(&html).starts_with("연결 해제 확인"));
    assert!(html.contains("method=\"post\" action=\"/passport/gmail/disconnect\""));
    assert!(html.contains(JISOO), "names the account");
    assert!(
        html.contains("class=\"button secondary\" href=\"/passport/gmail\""),
        "cancel goes back"
    );
    assert!(app.row(user).await.is_some(), "asking changes nothing");

    let refused = browser
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(app.row(user).await.is_some());

    let done = browser
        .client
        .post(app.url("/passport/gmail/disconnect"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(app.row(user).await.is_none());

    // Nothing left to disconnect: the confirmation sends back to the item page.
    let resp = browser.get("/passport/gmail/disconnect").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/passport/gmail");
    // Without a session: the sign-in page.
    let resp = app.browser(None).get("/passport/gmail/disconnect").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_item_page_names_its_state_and_its_main_action() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let html = browser.get("/passport/gmail").await.text().await.unwrap();
    assert!(
        title(&html).starts_with("연결되지 않음"),
        "{}",
        title(&html)
    );
    assert!(html.contains(">연결하기 <span"));

    app.seed_passport(user, JISOO, GMAIL_ONLY).await;
    let html = browser.get("/passport/gmail").await.text().await.unwrap();
    assert!(
        title(&html).starts_with("일부 권한 없음"),
        "{}",
        title(&html)
    );
    assert!(
        html.contains("class=\"button primary\" href=\"/passport/gmail/connect?")
            && html.contains(">캘린더 권한 추가 (재인증) <span"),
        "the main button says what it is for"
    );
    // The main action comes before the lists of permissions.
    let button = html.find("class=\"button primary\"").unwrap();
    assert!(button < html.find("id=\"missing-title\"").unwrap());
}

#[tokio::test]
async fn the_stylesheet_is_compressed_hashed_and_immutable() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let browser = app.browser(Some(user));
    let html = browser.get("/passport/gmail").await.text().await.unwrap();
    let at = html.find("<link rel=\"stylesheet\" href=\"").unwrap() + 29;
    let href = &html[at..at + html[at..].find('"').unwrap()];
    assert!(
        href.starts_with("/static/passport.") && href.ends_with(".css") && href.len() > 24,
        "a hashed name: {href}"
    );

    let client = app.client();
    let plain = client.get(app.url(href)).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let h = plain.headers().clone();
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert!(h.get("content-encoding").is_none(), "not asked for");
    let etag = h["etag"].to_str().unwrap().to_string();
    let full = plain.bytes().await.unwrap().len();

    for encoding in ["gzip", "br"] {
        let resp = client
            .get(app.url(href))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-encoding"], encoding);
        assert_eq!(
            resp.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let sent = resp.bytes().await.unwrap().len();
        assert!(sent * 2 < full, "{encoding}: {sent} of {full} bytes");
    }

    let again = client
        .get(app.url(href))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // The plain name is revalidated; an unknown one is the 404 page.
    let old = client
        .get(app.url("/static/passport.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::OK);
    assert_eq!(old.headers()["cache-control"], "public, no-cache");
    assert_eq!(old.headers()["etag"].to_str().unwrap(), etag);
    let unknown = client
        .get(app.url("/static/passport.0000000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // The pages are compressed too, and still never stored.
    let page = browser
        .client
        .get(app.url("/passport/gmail"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-encoding"], "gzip");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("style-src 'self'"));
}
