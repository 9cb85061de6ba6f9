//! The migration adopts the old service's `gmail_token` table.

use crate::helpers::*;
use auth_server::store::MIGRATOR;
use sqlx::Executor;
use uuid::Uuid;

#[tokio::test]
async fn migrations_adopt_the_old_table_and_its_rows_report_calendar_missing() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The table as the old Python service created it.
    pool.execute(
        "CREATE TABLE gmail_token (user_id uuid PRIMARY KEY, access_token text, refresh_token text, scopes jsonb)",
    )
    .await
    .unwrap();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let gmail = serde_json::json!([
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile"
    ]);
    // The old service sometimes stored the scope string as Google sent it.
    let gmail_string = serde_json::json!(
        "https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/gmail.readonly"
    );
    for (user, at, rt, scopes) in [
        (a, "ya29.legacy-a", "1//legacy-a", &gmail),
        (b, "ya29.legacy-b", "1//legacy-b", &gmail_string),
    ] {
        sqlx::query("INSERT INTO gmail_token (user_id, access_token, refresh_token, scopes) VALUES ($1, $2, $3, $4)")
            .bind(user)
            .bind(at)
            .bind(rt)
            .bind(scopes)
            .execute(&pool)
            .await
            .unwrap();
    }
    let before: Vec<(Uuid, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT user_id, access_token, refresh_token, scopes FROM gmail_token ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    MIGRATOR
        .run(&pool)
        .await
        .expect("migrations adopt the table");
    MIGRATOR.run(&pool).await.expect("and are idempotent");

    let after: Vec<(Uuid, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT user_id, access_token, refresh_token, scopes FROM gmail_token ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(before, after, "existing data is untouched");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM gmail_token")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(statuses, ["active", "active"]);
    pool.close().await;

    // The service on that database reports Calendar missing for both.
    let app = TestApp::spawn_on(url, &[]).await;
    for user in [a, b] {
        let status: serde_json::Value = app
            .browser(Some(user))
            .get("/api/passport/gmail")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["connected"], true);
        assert_eq!(status["needs_reauth"], true);
        let missing: Vec<String> =
            serde_json::from_value(status["missing_scopes"].clone()).unwrap();
        assert!(
            missing.contains(&"calendar".into()) && missing.contains(&"calendar.events".into()),
            "{missing:?}"
        );
        assert!(status["email"].is_null(), "the old table had no email");
    }

    // And a legacy user can upgrade: the old refresh token is replaced.
    let landed = app.browser(Some(a)).reauth(None, JISOO, ALL, true).await;
    assert_eq!(query_map(&landed)["result"], "upgraded");
    let row = app.row(a).await.unwrap();
    assert_eq!(row.email.as_deref(), Some(JISOO));
    assert_ne!(app.refresh_of(a).await.as_deref(), Some("1//legacy-a"));
    assert!(
        row.refresh_token.as_deref().unwrap().starts_with("enc:v1:"),
        "encrypted on its next write"
    );
}
