//! The rollout report: connections by status, and who still lacks which scope.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use strum::IntoEnumIterator;

use crate::passport::provider::Provider;
use crate::passport::Passport;
use crate::scopes::{short_name, ScopeSet};
use crate::store::gmail_token::{self, ConnectionStatus};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub provider: &'static str,
    pub total: i64,
    /// Connections by status: active, reauth_required, revoked.
    pub by_status: BTreeMap<ConnectionStatus, i64>,
    /// For each required scope (short name), how many connections lack it.
    pub missing: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct MissingUser {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub status: ConnectionStatus,
    pub last_consent_at: Option<DateTime<Utc>>,
}

impl Passport {
    /// The rollout report of `provider`.
    pub(crate) async fn report(&self, provider: &Provider) -> Result<Report, sqlx::Error> {
        build(&self.db, provider).await
    }

    /// Users whose connection lacks `scope`, oldest consent first.
    pub(crate) async fn missing_users(
        &self,
        scope: &ScopeSet,
    ) -> Result<Vec<MissingUser>, sqlx::Error> {
        missing_users(&self.db, scope).await
    }
}

async fn build(db: &sqlx::PgPool, provider: &Provider) -> Result<Report, sqlx::Error> {
    let mut by_status: BTreeMap<ConnectionStatus, i64> =
        ConnectionStatus::iter().map(|s| (s, 0)).collect();
    for c in gmail_token::count_by_status(db).await? {
        by_status.insert(c.status, c.n);
    }
    let mut missing = BTreeMap::new();
    for url in provider.scopes.iter() {
        let short = short_name(url);
        missing.insert(
            short.to_string(),
            gmail_token::count_missing(db, url, short).await?,
        );
    }
    Ok(Report {
        provider: provider.name,
        total: by_status.values().sum(),
        by_status,
        missing,
    })
}

/// Users whose connection lacks `scope` (short name or URL), oldest consent first.
async fn missing_users(
    db: &sqlx::PgPool,
    scope: &ScopeSet,
) -> Result<Vec<MissingUser>, sqlx::Error> {
    let mut out: Vec<MissingUser> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for url in scope.iter() {
        for r in gmail_token::list_missing(db, url, short_name(url)).await? {
            if seen.insert(r.user_id) {
                out.push(MissingUser {
                    user_id: r.user_id,
                    email: r.email,
                    status: r.status,
                    last_consent_at: r.consented_at,
                });
            }
        }
    }
    Ok(out)
}

impl Report {
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!(
            "Gmail Passport ({}): {} connections\n",
            self.provider, self.total
        );
        s.push_str("\nby status / 상태별\n");
        for (k, v) in &self.by_status {
            s.push_str(&format!("  {:<16} {v:>8}\n", k.as_str()));
        }
        s.push_str("\nlacking each required scope / 권한이 없는 연결\n");
        for (k, v) in &self.missing {
            s.push_str(&format!("  {k:<16} {v:>8}\n"));
        }
        s
    }
}

/// CSV of users to upgrade: `user_id,email,status,last_consent_at`.
pub(crate) fn to_csv(users: &[MissingUser]) -> String {
    const MEMORY: &str = "writing CSV to memory cannot fail";
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["user_id", "email", "status", "last_consent_at"])
        .expect(MEMORY);
    for u in users {
        let mut email = u.email.clone().unwrap_or_default();
        // Never a formula when the file is opened in a spreadsheet.
        if email.starts_with(['=', '+', '-', '@']) {
            email.insert(0, '\'');
        }
        let consent = u.last_consent_at.map(|t| t.to_rfc3339());
        let user = u.user_id.to_string();
        let status = u.status.as_str();
        w.write_record([&user, &email, status, consent.as_deref().unwrap_or("")])
            .expect(MEMORY);
    }
    String::from_utf8(w.into_inner().expect(MEMORY)).expect("CSV of UTF-8 fields is UTF-8")
}
