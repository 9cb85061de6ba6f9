//! Retention: old audit events and delivered webhooks are pruned in batches by
//! a background task; newer rows and undelivered webhooks are kept.

use std::time::Duration;

use crate::helpers::*;
use crate::wait::wait_for;
use uuid::Uuid;

async fn add_event(app: &TestApp, user: Uuid, age_days: i32) {
    sqlx::query(
        "INSERT INTO passport_event (user_id, provider, kind, created_at)
         VALUES ($1, 'gmail', 'refreshed', now() - make_interval(days => $2))",
    )
    .bind(user)
    .bind(age_days)
    .execute(&app.db)
    .await
    .unwrap();
}

/// A webhook row created `age_days` ago; delivered that long ago if `delivered`.
async fn add_webhook(app: &TestApp, status: &str, age_days: i32) {
    sqlx::query(
        "INSERT INTO webhook_outbox (event_id, kind, user_id, payload, status, created_at,
                                     delivered_at)
         VALUES ($1, 'connected', $2, '{}', $3, now() - make_interval(days => $4),
                 CASE WHEN $3 = 'delivered' THEN now() - make_interval(days => $4) END)",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .bind(status)
    .bind(age_days)
    .execute(&app.db)
    .await
    .unwrap();
}

/// `(events, webhooks by status)`, each as a sorted list of ages in days.
async fn ages(app: &TestApp) -> (Vec<i32>, Vec<(String, i32)>) {
    let events = sqlx::query_scalar(
        "SELECT extract(day FROM now() - created_at)::int FROM passport_event ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let hooks = sqlx::query_as(
        "SELECT status, extract(day FROM now() - created_at)::int FROM webhook_outbox
         ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    (events, hooks)
}

#[tokio::test]
async fn old_events_and_delivered_webhooks_are_pruned_in_batches_and_the_rest_kept() {
    let app = TestApp::spawn_with(&[
        ("EVENT_RETENTION_DAYS", "30"),
        ("WEBHOOK_RETENTION_DAYS", "7"),
        ("RETENTION_BATCH", "2"),
        ("RETENTION_INTERVAL_SECS", "1"),
    ])
    .await;
    let user = Uuid::new_v4();
    // Seven events past 30 days (four batches of two), two within.
    for age in [31, 40, 45, 100, 200, 300, 400] {
        add_event(&app, user, age).await;
    }
    for age in [0, 29] {
        add_event(&app, user, age).await;
    }
    // Five delivered webhooks past 7 days, one within; undelivered ones of
    // any age stay.
    for age in [8, 9, 10, 30, 60] {
        add_webhook(&app, "delivered", age).await;
    }
    add_webhook(&app, "delivered", 6).await;
    add_webhook(&app, "pending", 60).await;
    add_webhook(&app, "dead", 60).await;

    let kept = wait_for(
        "the background task to prune the old rows",
        Duration::from_secs(30),
        async || {
            let (events, hooks) = ages(&app).await;
            let old_events = events.iter().any(|d| *d >= 30);
            let old_hooks = hooks.iter().any(|(s, d)| s == "delivered" && *d >= 7);
            match old_events || old_hooks {
                false => Ok((events, hooks)),
                true => Err((events, hooks)),
            }
        },
    )
    .await;
    assert_eq!(kept.0, vec![0, 29], "newer events are kept");
    let hooks: Vec<(&str, i32)> = kept.1.iter().map(|(s, d)| (s.as_str(), *d)).collect();
    assert_eq!(
        hooks,
        vec![("dead", 60), ("delivered", 6), ("pending", 60)],
        "newer delivered and every undelivered webhook are kept"
    );
}
