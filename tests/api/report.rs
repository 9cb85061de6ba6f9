//! The rollout report: who still lacks which scope.

use crate::doctor::run_cli;
use crate::helpers::*;
use reqwest::StatusCode;
use uuid::Uuid;

#[tokio::test]
async fn report_counts_statuses_and_missing_scopes_and_lists_users_to_upgrade() {
    let app = TestApp::spawn().await;
    let done = Uuid::new_v4();
    let todo = Uuid::new_v4();
    let broken = Uuid::new_v4();
    app.seed_passport(done, JISOO, ALL).await;
    app.seed_passport(todo, MINHO, GMAIL_ONLY).await;
    app.seed_passport(broken, JISOO, GMAIL_ONLY).await;
    sqlx::query("UPDATE gmail_token SET status = 'reauth_required' WHERE user_id = $1")
        .bind(broken)
        .execute(&app.db)
        .await
        .unwrap();
    // A legacy row with the scope list as one string.
    let legacy = Uuid::new_v4();
    sqlx::query("INSERT INTO gmail_token (user_id, scopes) VALUES ($1, to_jsonb($2::text))")
        .bind(legacy)
        .bind("https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/calendar")
        .execute(&app.db)
        .await
        .unwrap();

    let get = |q: &str| {
        app.client()
            .get(app.url(&format!("/internal/passport/gmail/report{q}")))
            .bearer_auth(INTERNAL_KEY)
            .send()
    };
    let r: serde_json::Value = get("").await.unwrap().json().await.unwrap();
    assert_eq!(r["total"], 4);
    assert_eq!(r["by_status"]["active"], 3);
    assert_eq!(r["by_status"]["reauth_required"], 1);
    assert_eq!(r["by_status"]["revoked"], 0);
    assert_eq!(r["missing"]["calendar"], 2, "{r}");
    assert_eq!(r["missing"]["calendar.events"], 3, "{r}");
    assert_eq!(r["missing"]["gmail.send"], 0, "{r}");

    let csv = get("?missing=calendar&format=csv").await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "user_id,email,status,last_consent_at");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(csv.contains(&format!("{todo},{MINHO},active,")));
    assert!(csv.contains(&format!("{broken},{JISOO},reauth_required,")));
    assert!(!csv.contains(&done.to_string()) && !csv.contains(&legacy.to_string()));

    let bad = get("?missing=calendr").await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unauth = app
        .client()
        .get(app.url("/internal/passport/gmail/report"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);

    // The command line gives the same.
    let out = run_cli(&app, &["report"]).await;
    assert!(out.contains("4 connections"), "{out}");
    assert!(out.contains("reauth_required"), "{out}");
    let out = run_cli(
        &app,
        &["report", "--missing", "calendar", "--format", "csv"],
    )
    .await;
    assert_eq!(out, csv);
}
