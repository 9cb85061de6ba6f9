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
use crate::store::passport_event::{self, EventKind};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub provider: &'static str,
    pub total: i64,
    /// Connections by status: active, reauth_required, revoked.
    pub by_status: BTreeMap<ConnectionStatus, i64>,
    /// For each required scope (short name), how many connections lack it.
    pub missing: BTreeMap<String, i64>,
    /// Scope lists found edited outside the service and corrected from
    /// Google (`scopes_corrected` events still kept).
    pub scopes_corrected: i64,
    /// Connections whose scopes no MAC vouches for yet (adopted from the old
    /// service, or changed by another writer): checked with Google at their
    /// next use.
    pub scopes_unverified: i64,
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
    let corrected = EventKind::ScopesCorrected;
    Ok(Report {
        provider: provider.name,
        total: by_status.values().sum(),
        by_status,
        missing,
        scopes_corrected: passport_event::count_kind(db, provider.name, corrected).await?,
        scopes_unverified: gmail_token::count_unverified(db).await?,
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
        s.push_str("\nscopes edited outside the service / 서비스 밖에서 고친 권한 목록\n");
        s.push_str(&format!(
            "  {:<16} {:>8}\n",
            "corrected", self.scopes_corrected
        ));
        s.push_str(&format!(
            "  {:<16} {:>8}\n",
            "unverified", self.scopes_unverified
        ));
        s
    }
}

/// CSV of users to upgrade: `user_id,email,status,last_consent_at`. Every
/// cell is [`neutralised`].
pub(crate) fn to_csv(users: &[MissingUser]) -> String {
    let mut rows = vec![["user_id", "email", "status", "last_consent_at"].map(String::from)];
    for u in users {
        rows.push([
            u.user_id.to_string(),
            u.email.clone().unwrap_or_default(),
            u.status.as_str().to_string(),
            u.last_consent_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ]);
    }
    write_csv(rows)
}

/// CSV of the summary: `kind,name,count` (`status` or `missing` rows).
pub(crate) fn summary_csv(r: &Report) -> String {
    let mut rows = vec![["kind", "name", "count"].map(String::from)];
    for (k, v) in &r.by_status {
        rows.push(["status".into(), k.as_str().into(), v.to_string()]);
    }
    for (k, v) in &r.missing {
        rows.push(["missing".into(), k.clone(), v.to_string()]);
    }
    for (k, v) in [
        ("corrected", r.scopes_corrected),
        ("unverified", r.scopes_unverified),
    ] {
        rows.push(["scopes".into(), k.into(), v.to_string()]);
    }
    write_csv(rows)
}

fn write_csv<const N: usize>(rows: Vec<[String; N]>) -> String {
    const MEMORY: &str = "writing CSV to memory cannot fail";
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.write_record(row.iter().map(|cell| neutralised(cell).into_owned()))
            .expect(MEMORY);
    }
    String::from_utf8(w.into_inner().expect(MEMORY)).expect("CSV of UTF-8 fields is UTF-8")
}

/// A cell that a spreadsheet will not read as a formula (OWASP's CSV
/// injection advice): a cell starting with `=`, `+`, `-`, `@`, a TAB or a
/// carriage return gets a leading `'`. The `csv` writer quotes what needs it.
pub(crate) fn neutralised(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str) -> MissingUser {
        MissingUser {
            user_id: Uuid::nil(),
            email: Some(email.into()),
            status: ConnectionStatus::Active,
            last_consent_at: None,
        }
    }

    /// The second line of the CSV, parsed back as a spreadsheet would read it.
    fn email_cell(email: &str) -> String {
        let text = to_csv(&[user(email)]);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let rec = r.records().next().expect("one row").expect("valid CSV");
        rec[1].to_string()
    }

    #[test]
    fn a_cell_starting_with_each_formula_character_is_neutralised() {
        for lead in ['=', '+', '-', '@', '\t', '\r'] {
            let email = format!("{lead}HYPERLINK(\"https://evil.example\")@x.example");
            assert_eq!(email_cell(&email), format!("'{email}"), "{lead:?}");
        }
    }

    #[test]
    fn ordinary_cells_are_kept_and_quoted_only_when_needed() {
        assert_eq!(email_cell("jisoo@example.com"), "jisoo@example.com");
        assert_eq!(email_cell("a,b@example.com"), "a,b@example.com");
        // Inside a cell the characters are harmless: only the lead counts.
        assert_eq!(email_cell("a=b@example.com"), "a=b@example.com");
        let text = to_csv(&[user("a,b@example.com")]);
        assert!(text.contains("\"a,b@example.com\""), "{text}");
    }

    #[test]
    fn the_summary_is_csv_with_a_header() {
        let r = Report {
            provider: "gmail",
            total: 3,
            by_status: [
                (ConnectionStatus::Active, 2),
                (ConnectionStatus::Revoked, 1),
            ]
            .into_iter()
            .collect(),
            missing: [("calendar".to_string(), 1)].into_iter().collect(),
            scopes_corrected: 4,
            scopes_unverified: 5,
        };
        assert_eq!(
            summary_csv(&r),
            "kind,name,count\nstatus,active,2\nstatus,revoked,1\nmissing,calendar,1\nscopes,corrected,4\nscopes,unverified,5\n"
        );
    }
}
