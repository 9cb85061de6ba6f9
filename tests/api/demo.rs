//! The demo: sign in as the Gmail-only user and click through 재인증; the
//! "what the assistant did" panel; the address it listens on, what it says
//! when a port is taken, and its banner.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;
use auth_server::demo;
use auth_server::fake_google::{FakeConfig, FakeGoogle};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A demo as `auth-server demo` builds it, in this process, seeded; its base
/// URL, its fake Google and that fake's base URL.
async fn start_demo() -> (String, FakeGoogle, String) {
    let database_url = fresh_database().await;
    let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_base = format!("http://{}", fake_listener.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings =
        demo::demo_settings(listener.local_addr().unwrap(), &fake_base, &database_url).unwrap();
    let mut cfg = FakeConfig::with_client(demo::DEMO_CLIENT_ID, demo::DEMO_CLIENT_SECRET);
    cfg.redirect_uris = vec![settings.redirect_uri("gmail").to_string()];
    let fake = FakeGoogle::new(cfg);
    let pool = auth_server::store::connect_and_migrate(&database_url, &settings.database)
        .await
        .unwrap();
    let app = demo::application(settings.clone(), pool.clone(), listener, fake.clone());
    let passport = app.state().passport.clone();
    demo::seed(&passport, &fake).await.unwrap();
    demo::seed(&passport, &fake)
        .await
        .expect("seeding again resets");
    let router = fake.router();
    tokio::spawn(async move { axum::serve(fake_listener, router).await });
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let base = settings
        .public_base_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    (base, fake, fake_base)
}

#[tokio::test]
async fn demo_journey_from_sign_in_to_calendar_granted() {
    let (base, fake, fake_base) = start_demo().await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .unwrap();
    let page = client.get(format!("{base}/demo")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("김지수"));
    sign_in_as_jisoo(&client, &base).await;
    let item = client
        .get(format!("{base}/passport/gmail"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(item.contains("jisoo@example.com"));
    assert!(item.contains("캘린더 권한이 없어 일정을 등록할 수 없습니다"));

    let browser = Browser {
        client,
        jar: Default::default(),
        app: base.clone(),
        fake: fake_base,
    };
    let landed = browser
        .reauth(
            Some(&format!("{base}/passport/gmail")),
            "jisoo@example.com",
            ALL,
            true,
        )
        .await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let item = browser.get(landed.as_str()).await.text().await.unwrap();
    assert!(item.contains("권한이 추가되었습니다"));
    assert!(!item.contains("class=\"missing\""));

    // Reset puts Jisoo back to Gmail only, at the fake too.
    let reset = browser
        .client
        .post(format!("{base}/demo/reset"))
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::SEE_OTHER);
    let item = browser.get("/passport/gmail").await.text().await.unwrap();
    assert!(item.contains("캘린더 권한이 없어 일정을 등록할 수 없습니다"));
    assert_eq!(fake.calls("token"), 0, "the fake forgot everything");
    let landed = browser
        .reauth(
            None,
            "jisoo@example.com",
            &["calendar", "calendar.events"],
            true,
        )
        .await;
    assert_eq!(
        query_map(&landed)["result"],
        "upgraded",
        "earlier grants kept at the fake after reset"
    );
}

/// A client with a cookie jar that follows no redirect.
fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(std::sync::Arc::new(reqwest::cookie::Jar::default()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_assistant_panel_shows_scope_missing_before_reauth_and_the_checkup_after() {
    let (base, fake, fake_base) = start_demo().await;
    let client = cookie_client();
    let play = async |client: &reqwest::Client| {
        let resp = client
            .post(format!("{base}/demo/calendar/play"))
            .header("origin", &base)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    };

    let panel = client.get(format!("{base}/demo/calendar")).send().await;
    let panel = panel.unwrap().text().await.unwrap();
    assert!(panel.contains("비서가 한 일"), "{panel}");
    assert!(panel.contains("아직 없습니다"), "no event yet: {panel}");

    // Another site cannot press the button.
    let cross = client
        .post(format!("{base}/demo/calendar/play"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    // Before 재인증: the token API's precise refusal, with its 재인증 link.
    let refused = play(&client).await;
    assert!(refused.contains("scope_missing"), "{refused}");
    assert!(refused.contains("calendar.events"), "names what is missing");
    assert!(
        refused.contains(&format!("href=\"{base}/passport/gmail/connect\"")),
        "links 재인증: {refused}"
    );
    assert!(fake.calendar_events().is_empty(), "nothing was created");
    assert_eq!(fake.calls("calendar.events.insert"), 0);

    // 재인증 as 김지수, then the skill books the appointment.
    sign_in_as_jisoo(&client, &base).await;
    let browser = Browser {
        client: client.clone(),
        jar: Default::default(),
        app: base.clone(),
        fake: fake_base,
    };
    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let created = play(&client).await;
    assert!(created.contains("검진 일정을 등록했습니다"), "{created}");
    assert!(!created.contains("scope_missing"), "{created}");
    let events = fake.calendar_events_of(demo::SKILL_USER_EMAIL);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["summary"], "검진");
    assert_eq!(events[0]["start"], demo::checkup_event()["start"]);
    let id = events[0]["id"].as_str().unwrap();
    assert!(created.contains(id), "the panel names the event created");

    let panel = client.get(format!("{base}/demo/calendar")).send().await;
    let panel = panel.unwrap().text().await.unwrap();
    for shown in [
        "검진",
        "2025-11-24 07:40–12:00 KST",
        "인천 연수구 갯벌로156",
        JISOO,
    ] {
        assert!(panel.contains(shown), "{shown} in {panel}");
    }
    assert!(!panel.contains("아직 없습니다"));
}

#[tokio::test]
async fn the_panel_shows_a_revocation_arriving_from_google_and_the_token_api_refusing_at_once() {
    let (base, fake, fake_base) = start_demo().await;
    let client = cookie_client();
    let press = async |path: &str, origin: &str| {
        client
            .post(format!("{base}{path}"))
            .header("origin", origin)
            .send()
            .await
            .unwrap()
    };
    // Another site cannot press the button.
    let cross = press("/demo/calendar/revoke", "https://elsewhere.example").await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(fake.calls("risc.push"), 0, "no signal sent");

    // 김지수 gets Calendar, so the skill has a working token first.
    sign_in_as_jisoo(&client, &base).await;
    let browser = Browser {
        client: client.clone(),
        jar: Default::default(),
        app: base.clone(),
        fake: fake_base,
    };
    let landed = browser.reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let played = press("/demo/calendar/play", &base)
        .await
        .text()
        .await
        .unwrap();
    assert!(played.contains("검진 일정을 등록했습니다"), "{played}");

    // Google signals the revocation; the token API refuses without asking Google.
    let token_calls = fake.calls("token");
    let revoked = press("/demo/calendar/revoke", &base).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked = revoked.text().await.unwrap();
    assert_eq!(fake.calls("risc.push"), 1);
    for shown in [
        "POST /google/risc",
        "202 — tokens-revoked for jisoo@example.com",
        "앱 접근 취소를 알렸습니다",
        "409 — reauth_required",
        &format!("href=\"{base}/passport/gmail/connect\""),
    ] {
        assert!(revoked.contains(shown), "{shown} in {revoked}");
    }
    assert_eq!(fake.calls("token"), token_calls, "Google was not asked");

    // The item page says so too.
    let item = client.get(format!("{base}/passport/gmail")).send().await;
    let item = item.unwrap().text().await.unwrap();
    assert!(item.contains("tokens_revoked"), "{item}");
}

/// A local port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `auth-server demo` (the real binary) with nothing of the environment but
/// `PATH` and `env`, outside any directory with a `.env`.
fn demo_command(args: &[&str], env: &[(&str, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-server"));
    cmd.arg("demo")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    cmd
}

/// Run the demo expecting it to stop at once; its stderr.
async fn demo_fails(args: &[&str], env: &[(&str, String)]) -> String {
    let out = tokio::time::timeout(Duration::from_secs(30), demo_command(args, env).output())
        .await
        .expect("the demo stops by itself")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no banner: {stderr}");
    stderr
}

#[tokio::test]
async fn a_taken_port_is_named_with_how_to_choose_another() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().to_string();
    let free = format!("127.0.0.1:{}", free_port());
    // Nothing listens there: the demo must stop before it needs a database.
    let env = |bind: &str| {
        vec![
            ("BIND_ADDR", bind.to_string()),
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/none".into(),
            ),
        ]
    };

    // BIND_ADDR is honoured, and a taken one is named.
    let err = demo_fails(&["--fake-bind", "127.0.0.1:0"], &env(&taken)).await;
    for said in [
        taken.as_str(),
        "already in use",
        "(address from BIND_ADDR)",
        "--bind",
        "BIND_ADDR=",
    ] {
        assert!(err.contains(said), "{said} in {err}");
    }
    // --bind wins over BIND_ADDR.
    let err = demo_fails(
        &["--bind", &taken, "--fake-bind", "127.0.0.1:0"],
        &env(&free),
    )
    .await;
    assert!(err.contains(&taken), "{err}");
    assert!(err.contains("(address from --bind)"), "{err}");
    // The fake Google's port.
    let err = demo_fails(&["--fake-bind", &taken], &env(&free)).await;
    for said in [
        taken.as_str(),
        "already in use",
        "fake Google",
        "--fake-bind",
    ] {
        assert!(err.contains(said), "{said} in {err}");
    }
    // A BIND_ADDR that is no address says so.
    let err = demo_fails(&[], &env("localhost")).await;
    assert!(
        err.contains("BIND_ADDR=`localhost` is not an address"),
        "{err}"
    );
    drop(held);
}

#[tokio::test]
async fn the_demo_listens_on_bind_addr_and_prints_a_key_and_a_curl_that_work() {
    let database_url = fresh_database().await;
    let bind = format!("127.0.0.1:{}", free_port());
    let mut child = demo_command(
        &["--fake-bind", "127.0.0.1:0"],
        &[
            ("BIND_ADDR", bind.clone()),
            ("DATABASE_URL", database_url),
            ("RUST_LOG", "info".into()),
            ("LOG_FORMAT", "json".into()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            all.push(l);
        }
        all
    });
    let mut banner = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !banner.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        let line = tokio::time::timeout_at(deadline, stdout.next_line())
            .await
            .expect("the banner in time")
            .unwrap()
            .expect("the demo kept running");
        banner.push(line);
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains(&format!("listening on {bind} (from BIND_ADDR)")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("http://{bind}/demo/calendar")),
        "{banner}"
    );
    let key = banner
        .lines()
        .find_map(|l| {
            l.split("(made for this run; set INTERNAL_API_KEYS to choose it): ")
                .nth(1)
        })
        .expect("the key is printed")
        .trim()
        .to_string();
    assert!(
        banner.contains(&format!("-H \"Authorization: Bearer {key}\"")),
        "{banner}"
    );
    let body = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("-d '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the curl's body");
    assert!(banner.contains(&format!(
        "curl -sS -X POST http://{bind}/internal/passport/gmail/token"
    )));

    // The printed key and body, as the curl sends them.
    let resp = reqwest::Client::new()
        .post(format!("http://{bind}/internal/passport/gmail/token"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let refusal: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(refusal["error"], "scope_missing", "{refusal}");

    // Ctrl-C / SIGTERM: a clean stop, logged at info only, on stderr.
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let logs = logs.await.unwrap();
    crate::lifecycle::assert_clean_info_logs(&logs, "auth-server demo stopped");
    assert!(
        logs.iter()
            .any(|l| l.contains("auth-server demo listening") && l.contains(&bind)),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains(&key)),
        "the key is not logged"
    );
}

/// Sign in as 김지수 through the demo's sign-in form (the session cookie goes
/// into `client`'s jar).
async fn sign_in_as_jisoo(client: &reqwest::Client, base: &str) {
    let jisoo = demo::demo_users()[0].id.to_string();
    let signed = client
        .post(format!("{base}/demo/sign-in"))
        .form(&[("user_id", jisoo.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
}
