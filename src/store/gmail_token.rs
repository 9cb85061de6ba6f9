//! `gmail_token`: one Google connection per ro-being user.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// `gmail_token.status` (a CHECK constraint keeps the column to these).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    sqlx::Type,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConnectionStatus {
    /// Google refreshes the grant.
    Active,
    /// Google refused the grant (or there is none to refresh): 재인증 needed.
    ReauthRequired,
    /// Revoked (written by the old service).
    Revoked,
}

impl ConnectionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a connection needs 재인증, as `gmail_token.last_error` records it:
/// `"<code>: <detail>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReauthCause {
    /// No refresh token is stored (a row adopted from the old service, or
    /// Google sent none).
    NoRefreshToken,
    /// Google answered `invalid_grant` to a refresh, with its description.
    InvalidGrant { description: String },
    /// Marked by another writer (the old service, an operator), with its note.
    Recorded(String),
    /// Google answered `invalid_grant` with `error_subtype` `invalid_rapt`: a
    /// Workspace re-authentication policy asks the user to sign in again.
    InvalidRapt { description: String },
    /// Google answered `admin_policy_enforced`: the Workspace admin blocks
    /// the app or one of its scopes; 재인증 helps only once the admin allows it.
    AdminPolicyEnforced { description: String },
    /// Google answered `org_internal`: the app is limited to the users of
    /// its Cloud organisation, and this account is not one of them.
    OrgInternal { description: String },
    /// Google answered `access_denied` to a refresh.
    AccessDenied { description: String },
    /// Marked by a revocation signal Google pushed (RISC).
    Signal(crate::store::risc_event::RevocationSignal),
}

impl ReauthCause {
    /// The short code APIs and webhooks show.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NoRefreshToken => "no_refresh_token",
            Self::InvalidGrant { .. } => "invalid_grant",
            Self::Recorded(_) => "reauth_required",
            Self::InvalidRapt { .. } => "invalid_rapt",
            Self::AdminPolicyEnforced { .. } => "admin_policy_enforced",
            Self::OrgInternal { .. } => "org_internal",
            Self::AccessDenied { .. } => "access_denied",
            Self::Signal(s) => s.kind.code(),
        }
    }

    /// Google's description of the refusal, when the cause is Google's.
    pub(crate) fn detail(&self) -> Option<&str> {
        match self {
            Self::InvalidGrant { description }
            | Self::InvalidRapt { description }
            | Self::AdminPolicyEnforced { description }
            | Self::OrgInternal { description }
            | Self::AccessDenied { description } => Some(description),
            Self::Signal(s) => Some(&s.detail),
            Self::NoRefreshToken | Self::Recorded(_) => None,
        }
    }

    /// A refusal of Google's, by its code, with Google's description.
    fn from_code(code: &str, description: String) -> Option<Self> {
        Some(match code {
            "invalid_grant" => Self::InvalidGrant { description },
            "invalid_rapt" => Self::InvalidRapt { description },
            "admin_policy_enforced" => Self::AdminPolicyEnforced { description },
            "org_internal" => Self::OrgInternal { description },
            "access_denied" => Self::AccessDenied { description },
            _ => return None,
        })
    }

    /// The text stored in `last_error`.
    pub(crate) fn to_last_error(&self) -> String {
        match (self, self.detail()) {
            (Self::NoRefreshToken, _) => {
                "no_refresh_token: no refresh token is stored; press 재인증".into()
            }
            (Self::Recorded(note), _) => note.clone(),
            (_, Some(d)) if !d.is_empty() => format!("{}: {d}", self.code()),
            _ => self.code().into(),
        }
    }

    /// Read back what [`to_last_error`](Self::to_last_error) (or another
    /// writer) stored.
    pub(crate) fn from_last_error(stored: Option<&str>) -> Self {
        let stored = stored.unwrap_or_default();
        let (code, detail) = stored.split_once(':').unwrap_or((stored, ""));
        match code.trim() {
            "no_refresh_token" => Self::NoRefreshToken,
            "" => Self::Recorded("reauth_required".into()),
            code => Self::from_code(code, detail.trim().to_string())
                .or_else(|| {
                    let kind = code.parse::<crate::store::risc_event::SignalKind>().ok()?;
                    Some(Self::Signal(crate::store::risc_event::RevocationSignal {
                        kind,
                        detail: detail.trim().to_string(),
                    }))
                })
                .unwrap_or_else(|| Self::Recorded(stored.to_string())),
        }
    }
}

impl std::fmt::Display for ReauthCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_last_error())
    }
}

/// A row as stored. Columns adopted from the old service's table may be NULL.
#[derive(Clone)]
pub struct TokenRow {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub google_sub: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub token_type: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Option<serde_json::Value>,
    /// `<key id>:<base64url MAC>` vouching for `scopes` (see `crypto`);
    /// `None` on rows adopted from the old service or edited by hand.
    pub scopes_mac: Option<String>,
    pub status: ConnectionStatus,
    pub last_error: Option<String>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub consented_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TokenRow {
    /// Why this connection needs 재인증 (meaningful when it is not active).
    pub(crate) fn reauth_cause(&self) -> ReauthCause {
        ReauthCause::from_last_error(self.last_error.as_deref())
    }
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("status", &self.status)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

pub async fn find(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, scopes_mac, status AS "status: ConnectionStatus", last_error,
                  last_refreshed_at, consented_at,
                  created_at, updated_at
           FROM gmail_token WHERE user_id = $1"#,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Claim the right to refresh this row for `secs` seconds, unless another
/// claim is still running. Returns the row when the claim is ours. One short
/// statement: nothing stays locked while Google is asked.
pub(crate) async fn claim_refresh(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    secs: f64,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"UPDATE gmail_token
           SET refresh_claimed_until = now() + make_interval(secs => $2)
           WHERE user_id = $1
             AND (refresh_claimed_until IS NULL OR refresh_claimed_until < now())
           RETURNING user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, scopes_mac, status AS "status: ConnectionStatus", last_error,
                  last_refreshed_at, consented_at,
                  created_at, updated_at"#,
        user_id,
        secs,
    )
    .fetch_optional(db)
    .await
}

/// Give a refresh claim back without a result (Google unavailable).
pub(crate) async fn release_refresh(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE gmail_token SET refresh_claimed_until = NULL
           WHERE user_id = $1 AND refresh_claimed_until IS NOT NULL"#,
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Read the row and lock it until the transaction ends.
pub(crate) async fn find_for_update(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, scopes_mac, status AS "status: ConnectionStatus", last_error,
                  last_refreshed_at, consented_at,
                  created_at, updated_at
           FROM gmail_token WHERE user_id = $1 FOR UPDATE"#,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// What a completed consent writes.
pub struct ConsentWrite<'a> {
    pub user_id: Uuid,
    pub email: Option<&'a str>,
    pub google_sub: &'a str,
    pub access_token: &'a str,
    /// `None` stores NULL: the caller decides whether an old one is kept.
    pub refresh_token: Option<&'a str>,
    pub token_type: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: serde_json::Value,
    /// The MAC vouching for `scopes` (written in the same statement).
    pub scopes_mac: Option<&'a str>,
    pub last_error: Option<&'a str>,
}

/// Insert or replace the connection after a consent; status becomes `active`.
pub async fn upsert_consent(
    db: impl PgExecutor<'_>,
    w: &ConsentWrite<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO gmail_token
               (user_id, email, google_sub, access_token, refresh_token, token_type, expires_at,
                scopes, scopes_mac, status, last_error, consented_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, 'active', $9, now(), now(), now())
           ON CONFLICT (user_id) DO UPDATE SET
               email = EXCLUDED.email,
               google_sub = EXCLUDED.google_sub,
               access_token = EXCLUDED.access_token,
               refresh_token = EXCLUDED.refresh_token,
               token_type = EXCLUDED.token_type,
               expires_at = EXCLUDED.expires_at,
               scopes = EXCLUDED.scopes,
               scopes_mac = EXCLUDED.scopes_mac,
               status = 'active',
               refresh_claimed_until = NULL,
               last_error = EXCLUDED.last_error,
               consented_at = now(),
               updated_at = now()"#,
        w.user_id,
        w.email,
        w.google_sub,
        w.access_token,
        w.refresh_token,
        w.token_type,
        w.expires_at,
        w.scopes,
        w.last_error,
        w.scopes_mac,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Number of rows (tests and the report).
pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM gmail_token"#)
        .fetch_one(pool)
        .await
}

/// Delete a user's connection; true when there was one.
pub(crate) async fn delete(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(r#"DELETE FROM gmail_token WHERE user_id = $1"#, user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Store a refreshed access token. `scopes` (with its MAC) replaces the
/// stored list only when Google sent one; the refresh token is never touched
/// here.
pub(crate) async fn record_refresh(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    access_token: &str,
    expires_at: Option<DateTime<Utc>>,
    scopes: Option<(serde_json::Value, Option<String>)>,
) -> Result<bool, sqlx::Error> {
    let (scopes, mac) = match scopes {
        Some((scopes, mac)) => (Some(scopes), mac),
        None => (None, None),
    };
    let r = sqlx::query!(
        r#"UPDATE gmail_token SET
               access_token = $2,
               expires_at = $3,
               scopes = COALESCE($4, scopes),
               scopes_mac = CASE WHEN $4::jsonb IS NULL THEN scopes_mac ELSE $5 END,
               token_type = 'Bearer',
               status = 'active',
               last_error = NULL,
               last_refreshed_at = now(),
               refresh_claimed_until = NULL,
               updated_at = now()
           WHERE user_id = $1 AND refresh_claimed_until IS NOT NULL"#,
        user_id,
        access_token,
        expires_at,
        scopes,
        mac,
    )
    .execute(db)
    .await?;
    // Nothing written when the claim was taken away meanwhile (a new consent
    // or a disconnect): the refreshed token belongs to a replaced grant.
    Ok(r.rows_affected() == 1)
}

/// Replace a row's scopes with what Google says the grant holds, with their
/// MAC, if the row still holds what was read (another writer in between
/// wins; the next read checks again). True when the row was corrected.
pub(crate) async fn correct_scopes(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    read: (Option<&serde_json::Value>, Option<&str>),
    scopes: &serde_json::Value,
    mac: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE gmail_token SET scopes = $4, scopes_mac = $5, updated_at = now()
           WHERE user_id = $1
             AND scopes IS NOT DISTINCT FROM $2
             AND scopes_mac IS NOT DISTINCT FROM $3"#,
        user_id,
        read.0,
        read.1,
        scopes,
        mac,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Rows whose scopes no MAC vouches for (adopted, or changed by another
/// writer), for the report.
pub(crate) async fn count_unverified(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM gmail_token WHERE scopes_mac IS NULL"#)
        .fetch_one(db)
        .await
}

/// Google refused the refresh token: keep the row, mark it.
pub(crate) async fn mark_reauth_required(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    cause: &ReauthCause,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE gmail_token SET status = 'reauth_required', last_error = $2,
               refresh_claimed_until = NULL, updated_at = now()
           WHERE user_id = $1 AND refresh_claimed_until IS NOT NULL"#,
        user_id,
        cause.to_last_error(),
    )
    .execute(db)
    .await?;
    // As for `record_refresh`: a grant replaced meanwhile is not marked.
    Ok(r.rows_affected() == 1)
}

/// Connections by status (the rollout report).
pub(crate) struct StatusCount {
    pub status: ConnectionStatus,
    pub n: i64,
}

pub(crate) async fn count_by_status(
    db: impl PgExecutor<'_>,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT status AS "status: ConnectionStatus", count(*) AS "n!" FROM gmail_token GROUP BY status ORDER BY status"#
    )
    .fetch_all(db)
    .await
}

/// How many connections lack a scope (given as full URL and short name:
/// rows of the old service may hold either, as an array or one string).
pub(crate) async fn count_missing(
    db: impl PgExecutor<'_>,
    url: &str,
    short: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM gmail_token
           WHERE NOT CASE jsonb_typeof(scopes)
               WHEN 'array' THEN scopes ? $1 OR scopes ? $2
               WHEN 'string' THEN $1 = ANY(string_to_array(scopes #>> '{}', ' '))
               ELSE false END"#,
        url,
        short,
    )
    .fetch_one(db)
    .await
}

/// A connection that lacks a scope, for the rollout list.
pub(crate) struct MissingRow {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub status: ConnectionStatus,
    pub consented_at: Option<DateTime<Utc>>,
}

pub(crate) async fn list_missing(
    db: impl PgExecutor<'_>,
    url: &str,
    short: &str,
) -> Result<Vec<MissingRow>, sqlx::Error> {
    sqlx::query_as!(
        MissingRow,
        r#"SELECT user_id, email, status AS "status: ConnectionStatus", consented_at FROM gmail_token
           WHERE NOT CASE jsonb_typeof(scopes)
               WHEN 'array' THEN scopes ? $1 OR scopes ? $2
               WHEN 'string' THEN $1 = ANY(string_to_array(scopes #>> '{}', ' '))
               ELSE false END
           ORDER BY consented_at NULLS FIRST, user_id"#,
        url,
        short,
    )
    .fetch_all(db)
    .await
}

/// The stored secrets of one row, for key rotation.
pub(crate) struct SecretsRow {
    pub user_id: Uuid,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub google_sub: Option<String>,
    pub scopes: Option<serde_json::Value>,
    pub scopes_mac: Option<String>,
}

/// Rows after `after` (by user id), `limit` at a time.
pub(crate) async fn secrets_page(
    db: impl PgExecutor<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SecretsRow>, sqlx::Error> {
    sqlx::query_as!(
        SecretsRow,
        r#"SELECT user_id, access_token, refresh_token, google_sub, scopes, scopes_mac
           FROM gmail_token
           WHERE $1::uuid IS NULL OR user_id > $1
           ORDER BY user_id LIMIT $2"#,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// A row's stored secrets and scopes MAC, as read and as rewritten.
pub(crate) struct Secrets<'a> {
    pub access_token: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub scopes_mac: Option<&'a str>,
}

/// Replace a row's stored secrets and scopes MAC if they are still what was
/// read (a refresh in between already re-sealed them). True when the row was
/// rewritten.
pub(crate) async fn rewrite_secrets(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    old: &Secrets<'_>,
    new: &Secrets<'_>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE gmail_token SET access_token = $4, refresh_token = $5, scopes_mac = $7
           WHERE user_id = $1
             AND access_token IS NOT DISTINCT FROM $2
             AND refresh_token IS NOT DISTINCT FROM $3
             AND scopes_mac IS NOT DISTINCT FROM $6"#,
        user_id,
        old.access_token,
        old.refresh_token,
        new.access_token,
        new.refresh_token,
        old.scopes_mac,
        new.scopes_mac,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Active connections the sweep should refresh: not refreshed, consented or
/// swept for `after_secs`, oldest first.
pub(crate) async fn due_for_sweep(
    db: impl PgExecutor<'_>,
    after_secs: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT user_id FROM gmail_token
           WHERE status = 'active'
             AND greatest(last_refreshed_at, consented_at, swept_at, created_at)
                 < now() - make_interval(secs => $1)
           ORDER BY greatest(last_refreshed_at, consented_at, swept_at, created_at)
           LIMIT $2"#,
        after_secs,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The sweep tried this connection now (whatever the outcome).
pub(crate) async fn mark_swept(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE gmail_token SET swept_at = now() WHERE user_id = $1"#,
        user_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replace the stored refresh token (re-sealed under the active key).
pub(crate) async fn set_refresh_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    sealed: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE gmail_token SET refresh_token = $2 WHERE user_id = $1"#,
        user_id,
        sealed
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A connection a revocation signal marked.
pub(crate) struct Signalled {
    pub user_id: Uuid,
    pub email: Option<String>,
}

/// Which connections a revocation signal names.
pub(crate) enum SignalTarget<'a> {
    /// Every connection of this Google account (`sub`) consented before
    /// the event was issued (`iat`, whole seconds: a consent within that
    /// second counts as before) or at an unknown time.
    Subject {
        sub: &'a str,
        issued_at: DateTime<Utc>,
    },
    /// The connection whose refresh token has this
    /// `hash_base64_sha512_sha512` (canonical base64).
    Sha512(&'a str),
    /// The connection whose refresh token's prefix has one of these MACs
    /// (one per configured key).
    PrefixMac(&'a [String]),
}

/// Mark the active connections a signal names `reauth_required` with its
/// cause (a refresh in flight loses its claim, so it cannot undo the mark).
/// Connections already not active, and (for an account) those consented
/// after the event was issued, are left alone. One statement per target
/// kind, each served by its index.
pub(crate) async fn mark_signalled(
    db: impl PgExecutor<'_>,
    target: SignalTarget<'_>,
    cause: &ReauthCause,
) -> Result<Vec<Signalled>, sqlx::Error> {
    let why = cause.to_last_error();
    match target {
        SignalTarget::Subject { sub, issued_at } => {
            sqlx::query_as!(
                Signalled,
                r#"UPDATE gmail_token SET status = 'reauth_required', last_error = $2,
                       refresh_claimed_until = NULL, updated_at = now()
                   WHERE google_sub = $1 AND status = 'active'
                     AND (consented_at IS NULL
                          OR consented_at < $3::timestamptz + interval '1 second')
                   RETURNING user_id, email"#,
                sub,
                why,
                issued_at,
            )
            .fetch_all(db)
            .await
        }
        SignalTarget::Sha512(hash) => {
            sqlx::query_as!(
                Signalled,
                r#"UPDATE gmail_token SET status = 'reauth_required', last_error = $2,
                       refresh_claimed_until = NULL, updated_at = now()
                   WHERE refresh_token_sha512 = $1 AND status = 'active'
                   RETURNING user_id, email"#,
                hash,
                why,
            )
            .fetch_all(db)
            .await
        }
        SignalTarget::PrefixMac(macs) => {
            sqlx::query_as!(
                Signalled,
                r#"UPDATE gmail_token SET status = 'reauth_required', last_error = $2,
                       refresh_claimed_until = NULL, updated_at = now()
                   WHERE refresh_prefix_mac = ANY($1) AND status = 'active'
                   RETURNING user_id, email"#,
                macs,
                why,
            )
            .fetch_all(db)
            .await
        }
    }
}

/// What a `token-revoked` event can name a refresh token by.
pub(crate) struct RefreshIds<'a> {
    /// base64(SHA-512(SHA-512(token))).
    pub sha512: &'a str,
    /// `<key id>:<MAC of the first 16 characters>`; `None` without keys.
    pub prefix_mac: Option<&'a str>,
}

/// Store the identifiers of the refresh token the row holds, if it still
/// holds `sealed` (the value the caller wrote or read). True when written.
pub(crate) async fn set_refresh_ids(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    sealed: &str,
    ids: &RefreshIds<'_>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE gmail_token SET refresh_token_sha512 = $3, refresh_prefix_mac = $4
           WHERE user_id = $1 AND refresh_token = $2
             AND (refresh_token_sha512 IS DISTINCT FROM $3
               OR refresh_prefix_mac IS DISTINCT FROM $4)"#,
        user_id,
        sealed,
        ids.sha512,
        ids.prefix_mac,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A stored refresh token without identifiers, for the backfill.
pub(crate) struct UnidentifiedRow {
    pub user_id: Uuid,
    pub refresh_token: String,
}

/// Rows after `after` (by user id) holding a refresh token without its
/// identifiers, or with a prefix MAC under another key than `active_key`,
/// `limit` at a time.
pub(crate) async fn unidentified_page(
    db: impl PgExecutor<'_>,
    after: Option<Uuid>,
    active_key: Option<&str>,
    limit: i64,
) -> Result<Vec<UnidentifiedRow>, sqlx::Error> {
    sqlx::query_as!(
        UnidentifiedRow,
        r#"SELECT user_id, refresh_token AS "refresh_token!" FROM gmail_token
           WHERE ($1::uuid IS NULL OR user_id > $1)
             AND refresh_token IS NOT NULL AND refresh_token <> ''
             AND (refresh_token_sha512 IS NULL
               OR ($3::text IS NOT NULL AND (refresh_prefix_mac IS NULL
                   OR NOT starts_with(refresh_prefix_mac, $3 || ':'))))
           ORDER BY user_id LIMIT $2"#,
        after,
        limit,
        active_key,
    )
    .fetch_all(db)
    .await
}

/// Many connections at once (benchmark and migration tooling): parallel
/// arrays, one row per index, all with the same scopes and expiry.
pub struct BulkConnections {
    pub user_ids: Vec<Uuid>,
    pub emails: Vec<String>,
    pub google_subs: Vec<String>,
    /// Sealed values, as [`upsert_consent`] stores them.
    pub access_tokens: Vec<String>,
    pub refresh_tokens: Vec<String>,
    /// The MACs vouching for the scopes, one per row.
    pub scopes_macs: Vec<String>,
    /// Seconds from now to `expires_at` (negative: already expired).
    pub expires_in_secs: f64,
}

/// Insert or replace many connections, `active`, in one statement.
pub async fn upsert_many(
    db: impl PgExecutor<'_>,
    rows: &BulkConnections,
    scopes: serde_json::Value,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"INSERT INTO gmail_token
               (user_id, email, google_sub, access_token, refresh_token, token_type, expires_at,
                scopes, scopes_mac, status, last_error, consented_at, created_at, updated_at)
           SELECT u, e, g, a, r, 'Bearer', now() + make_interval(secs => $6),
                  $7, m, 'active', NULL, now(), now(), now()
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $8::text[])
                AS t(u, e, g, a, r, m)
           ON CONFLICT (user_id) DO UPDATE SET
               email = EXCLUDED.email,
               google_sub = EXCLUDED.google_sub,
               access_token = EXCLUDED.access_token,
               refresh_token = EXCLUDED.refresh_token,
               token_type = EXCLUDED.token_type,
               expires_at = EXCLUDED.expires_at,
               scopes = EXCLUDED.scopes,
               scopes_mac = EXCLUDED.scopes_mac,
               status = 'active',
               last_error = NULL,
               consented_at = now(),
               updated_at = now()"#,
        &rows.user_ids,
        &rows.emails,
        &rows.google_subs,
        &rows.access_tokens,
        &rows.refresh_tokens,
        rows.expires_in_secs,
        scopes,
        &rows.scopes_macs,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauth_causes_read_back_what_was_written() {
        let causes = [
            ReauthCause::NoRefreshToken,
            ReauthCause::InvalidGrant {
                description: "Token has been expired or revoked.".into(),
            },
            ReauthCause::InvalidGrant {
                description: String::new(),
            },
            ReauthCause::Recorded("revoked by the old service".into()),
            ReauthCause::InvalidRapt {
                description: "reauth related error (invalid_rapt)".into(),
            },
            ReauthCause::AdminPolicyEnforced {
                description: String::new(),
            },
            ReauthCause::OrgInternal {
                description: "Only users in the organization".into(),
            },
            ReauthCause::AccessDenied {
                description: String::new(),
            },
            ReauthCause::Signal(crate::store::risc_event::RevocationSignal::new(
                crate::store::risc_event::SignalKind::AccountDisabled,
                Some("hijacking"),
            )),
            ReauthCause::Signal(crate::store::risc_event::RevocationSignal::new(
                crate::store::risc_event::SignalKind::TokensRevoked,
                None,
            )),
        ];
        for c in causes {
            assert_eq!(ReauthCause::from_last_error(Some(&c.to_last_error())), c);
        }
        let legacy = ReauthCause::from_last_error(None);
        assert_eq!(legacy.code(), "reauth_required");
        assert_eq!(
            ReauthCause::from_last_error(Some(
                "no_refresh_token: Google returned no refresh token; press 재인증"
            )),
            ReauthCause::NoRefreshToken
        );
    }
}
