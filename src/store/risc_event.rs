//! `risc_event`: the Security Event Tokens Google pushed (RISC), one row per
//! `jti`, so a token delivered twice changes nothing the second time; and
//! the causes they mark connections with.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Which RISC event marked a connection `reauth_required`: the code stored
/// in `gmail_token.last_error` (`"<code>: <detail>"`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum SignalKind {
    /// Every token of the app for the account was revoked (the user removed
    /// the app at myaccount.google.com).
    TokensRevoked,
    /// One refresh token was revoked.
    TokenRevoked,
    /// Every session of the account was ended (e.g. a password change).
    SessionsRevoked,
    /// The account was disabled (hijacking, bulk account, …).
    AccountDisabled,
    /// Google asks the user to change their credentials (e.g. a leaked
    /// password).
    CredentialChangeRequired,
}

impl SignalKind {
    pub(crate) fn code(self) -> &'static str {
        self.into()
    }

    /// What it means for the user, Korean first, then English.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::TokensRevoked => {
                "Google 계정에서 이 서비스의 접근 권한이 해제되었습니다 (Google: the app's access was revoked)"
            }
            Self::TokenRevoked => {
                "Google이 이 연결의 토큰을 취소했습니다 (Google: this connection's refresh token was revoked)"
            }
            Self::SessionsRevoked => {
                "Google 계정의 모든 세션이 종료되었습니다 (Google: every session of the account was ended)"
            }
            Self::AccountDisabled => {
                "Google 계정이 사용 중지되었습니다 (Google: the account was disabled)"
            }
            Self::CredentialChangeRequired => {
                "Google 계정의 비밀번호 변경이 필요합니다 (Google: the account's credentials must be changed)"
            }
        }
    }
}

/// A connection marked by a RISC event: the kind, and the detail stored
/// after the code (its message, and Google's `reason` when it gave one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevocationSignal {
    pub kind: SignalKind,
    pub detail: String,
}

impl RevocationSignal {
    pub(crate) fn new(kind: SignalKind, reason: Option<&str>) -> Self {
        let detail = match reason.filter(|r| !r.trim().is_empty()) {
            Some(r) => format!("{} (reason: {})", kind.message(), r.trim()),
            None => kind.message().to_string(),
        };
        Self { kind, detail }
    }
}

/// A received event as recorded.
pub(crate) struct Received<'a> {
    pub jti: &'a str,
    pub event_type: &'a str,
    pub subject_kind: &'a str,
    pub detail: Option<&'a str>,
}

/// Record an event; `false` when its `jti` was recorded before (a replay).
/// Inside the transaction that applies it: a replay arriving meanwhile
/// waits for it, then finds the row.
pub(crate) async fn insert(db: impl PgExecutor<'_>, e: &Received<'_>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"INSERT INTO risc_event (jti, event_type, subject_kind, detail)
           VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING"#,
        e.jti,
        e.event_type,
        e.subject_kind,
        e.detail,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// How many connections the event marked.
pub(crate) async fn set_marked(
    db: impl PgExecutor<'_>,
    jti: &str,
    marked: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE risc_event SET connections_marked = $2 WHERE jti = $1"#,
        jti,
        marked
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Delete up to `limit` rows received before `cutoff` (retention).
pub(crate) async fn prune(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"DELETE FROM risc_event WHERE jti IN (
               SELECT jti FROM risc_event WHERE received_at < $1
               ORDER BY received_at LIMIT $2
               FOR UPDATE SKIP LOCKED)"#,
        cutoff,
        limit,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<&str> = SignalKind::iter().map(SignalKind::code).collect();
        assert_eq!(
            codes,
            [
                "tokens_revoked",
                "token_revoked",
                "sessions_revoked",
                "account_disabled",
                "credential_change_required"
            ]
        );
    }
}
