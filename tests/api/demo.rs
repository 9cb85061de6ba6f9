//! The demo: sign in as the Gmail-only user and click through 재인증.

use crate::helpers::*;
use auth_server::demo;
use auth_server::fake_google::{FakeConfig, FakeGoogle};
use reqwest::StatusCode;

#[tokio::test]
async fn demo_journey_from_sign_in_to_calendar_granted() {
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

    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .unwrap();
    let page = client.get(format!("{base}/demo")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("김지수"));
    let jisoo = demo::demo_users()[0].id.to_string();
    let signed = client
        .post(format!("{base}/demo/sign-in"))
        .form(&[("user_id", jisoo.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
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
