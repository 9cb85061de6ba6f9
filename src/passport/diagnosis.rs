//! The doctor: the checks an operator runs by hand when a skill says "no
//! token", and the real cause in plain words (Korean and English) with its fix.
//! Scope missing ≠ grant revoked ≠ wrong Google client ≠ API disabled.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::crypto::{Field, MacCheck};
use crate::google::{CalendarProbe, GoogleError};
use crate::passport::provider::Provider;
use crate::passport::token::TokenError;
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{self, ConnectionStatus, ReauthCause, TokenRow};
use crate::store::passport_event::{self, EventKind, EventRow};
use crate::store::risc_event::SignalKind;

/// Events that store a new grant: a correction before one is history.
const CONSENT_KINDS: [EventKind; 4] = [
    EventKind::Connected,
    EventKind::Upgraded,
    EventKind::PartialGrant,
    EventKind::AccountChanged,
];

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok,
    Problem,
    Skipped,
    /// Works, but worth knowing (the connected account changed).
    Warning,
}

/// One check and what it found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub ko: String,
    pub en: String,
}

/// The cause the doctor settles on, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cause {
    pub code: &'static str,
    pub ko: String,
    pub en: String,
    pub fix_ko: String,
    pub fix_en: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Diagnosis {
    pub user_id: Uuid,
    pub provider: &'static str,
    pub connected: bool,
    pub email: Option<String>,
    pub status: Option<ConnectionStatus>,
    pub granted_scopes: Vec<String>,
    pub missing_scopes: Vec<String>,
    pub cause: Cause,
    pub checks: Vec<Check>,
}

fn check(
    name: &'static str,
    outcome: Outcome,
    ko: impl Into<String>,
    en: impl Into<String>,
) -> Check {
    Check {
        name,
        outcome,
        ko: ko.into(),
        en: en.into(),
    }
}

fn cause(code: &'static str, ko: &str, en: &str, fix_ko: &str, fix_en: &str) -> Cause {
    Cause {
        code,
        ko: ko.into(),
        en: en.into(),
        fix_ko: fix_ko.into(),
        fix_en: fix_en.into(),
    }
}

const REAUTH_FIX_KO: &str =
    "사용자가 설정 > 아이템 > Gmail에서 재인증을 누르고 모든 항목을 체크해야 합니다.";
const REAUTH_FIX_EN: &str =
    "The user presses 재인증 (Settings > Items > Gmail) and ticks every box.";

/// Name the cause of an `invalid_grant`, as far as it can be told.
fn invalid_grant_cause(
    last_error: &str,
    consented_at: Option<DateTime<Utc>>,
    failed_at: DateTime<Utc>,
) -> Cause {
    let age_days = consented_at.map(|c| (failed_at - c).num_hours() as f64 / 24.0);
    if let Some(days) = age_days.filter(|d| (6.5..=8.0).contains(d)) {
        return cause(
            "testing_mode_expiry",
            &format!(
                "Google이 리프레시 토큰을 거부했습니다({last_error}). 동의 후 약 {days:.1}일 만이므로, OAuth 동의 화면이 '테스트' 상태라 7일 만료된 것으로 보입니다."
            ),
            &format!(
                "Google refused the refresh token ({last_error}) about {days:.1} days after consent: the OAuth consent screen is most likely still in Testing, where refresh tokens expire after 7 days."
            ),
            "Cloud Console에서 OAuth 동의 화면을 '프로덕션'으로 게시한 뒤, 사용자가 재인증을 누르게 하세요.",
            "Publish the OAuth consent screen (Testing → In production) in Cloud Console, then have the user press 재인증.",
        );
    }
    cause(
        "grant_revoked_or_expired",
        &format!(
            "Google이 리프레시 토큰을 거부했습니다({last_error}). 사용자가 Google 계정에서 접근 권한을 삭제했거나, 비밀번호를 바꿨거나(Gmail 권한이 있는 토큰은 취소됨), 같은 계정의 토큰이 100개를 넘어 오래된 것이 취소되었거나, 6개월 동안 쓰이지 않았습니다. 권한(scope) 문제가 아닙니다."
        ),
        &format!(
            "Google refused the refresh token ({last_error}): the user removed the app's access in their Google Account, changed their password (tokens with Gmail scopes are revoked), the account passed Google's limit of 100 refresh tokens per client (oldest revoked), or it went unused for six months. This is not a missing scope."
        ),
        REAUTH_FIX_KO,
        REAUTH_FIX_EN,
    )
}

/// The checks so far and the cause settled on (the first one found wins).
#[derive(Default)]
struct Findings {
    checks: Vec<Check>,
    cause: Option<Cause>,
}

impl Findings {
    fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    fn suspect(&mut self, cause: Cause) {
        self.cause.get_or_insert(cause);
    }
}

impl Passport {
    /// Run every check for one user.
    pub(crate) async fn diagnose(
        &self,
        provider: &Provider,
        user: Uuid,
    ) -> Result<Diagnosis, sqlx::Error> {
        let Some(row) = gmail_token::find(&self.db, user).await? else {
            return Ok(not_connected(provider, user));
        };
        let mut f = Findings::default();
        f.push(connection_check(&row));
        let row = self.scopes_truth_check(provider, row, &mut f).await?;
        let stored = ScopeSet::from_json(row.scopes.as_ref());
        let missing = provider.scopes.missing_from(&stored);
        f.push(stored_scopes_check(&missing));
        let access = self.status_and_refresh(provider, &row, &mut f).await?;
        let google_missing = self
            .tokeninfo_check(provider, access.as_ref(), &mut f)
            .await;
        self.calendar_check(access.as_ref(), &mut f).await;
        let changed = self.account_check(provider, &row, &mut f).await?;
        let all_missing = missing.union(&google_missing);
        let cause = match (f.cause.take(), changed) {
            (Some(c), _) => c,
            // Instead of `works` only: a problem to fix says more.
            (None, Some(c)) if all_missing.is_empty() => c,
            (None, _) => final_cause(&all_missing),
        };
        let fresh = gmail_token::find(&self.db, user).await?;
        Ok(summary(provider, &row, fresh, cause, f.checks))
    }

    /// The `stored_scopes_verified` check: scopes no MAC vouches for are
    /// checked with Google (and corrected) first; a correction not yet
    /// superseded by a consent is told, with what Google's grant lacks.
    async fn scopes_truth_check(
        &self,
        provider: &Provider,
        row: TokenRow,
        f: &mut Findings,
    ) -> Result<TokenRow, sqlx::Error> {
        let unverified = row.clone();
        let row = match self.verified(provider, row).await {
            Ok(row) => row,
            Err(TokenError::Database(e)) => return Err(e),
            Err(e) => {
                f.push(check(
                    "stored_scopes_verified",
                    Outcome::Problem,
                    format!("저장된 권한 목록을 Google에 확인하지 못했습니다: {e}"),
                    format!("The stored scopes could not be checked with Google: {e}"),
                ));
                return Ok(unverified);
            }
        };
        let events = passport_event::recent_for_user(&self.db, row.user_id, provider.name, 50);
        let correction = events
            .await?
            .into_iter()
            .take_while(|e| !CONSENT_KINDS.contains(&e.kind))
            .find(|e| e.kind == EventKind::ScopesCorrected);
        match correction {
            Some(e) => {
                let c = edited_check(provider, &e, f);
                f.push(c);
            }
            None if self.scopes_check(&row) != MacCheck::Valid => f.push(check(
                "stored_scopes_verified",
                Outcome::Skipped,
                "저장된 권한 목록을 확인하지 않았습니다(재인증이 필요한 연결이거나 MAC 키가 없음).",
                "The stored scopes were not checked (the connection needs 재인증, or there is no MAC key).",
            )),
            None => f.push(check(
                "stored_scopes_verified",
                Outcome::Ok,
                "저장된 권한 목록은 이 서비스가 쓴 그대로입니다(MAC 확인).",
                "The stored scopes are as this service wrote them (MAC verified).",
            )),
        }
        Ok(row)
    }

    /// The `account` check, from the audit trail: the connected Google
    /// account replaced another one (the latest `account_changed` event whose
    /// new account is still the connected one). Returns the cause told
    /// instead of `works`.
    async fn account_check(
        &self,
        provider: &Provider,
        row: &TokenRow,
        f: &mut Findings,
    ) -> Result<Option<Cause>, sqlx::Error> {
        let events = passport_event::recent_for_user(&self.db, row.user_id, provider.name, 50);
        let change = events
            .await?
            .into_iter()
            .find(|e| e.kind == EventKind::AccountChanged)
            .filter(|e| same_account(e.email_after.as_deref(), row.email.as_deref()));
        let Some(e) = change else {
            f.push(check(
                "account",
                Outcome::Ok,
                "연결된 Google 계정이 바뀐 기록이 없습니다.",
                "No change of the connected Google account is recorded.",
            ));
            return Ok(None);
        };
        let unknown = || "알 수 없음 (unknown)".to_string();
        let before = e.email_before.clone().unwrap_or_else(unknown);
        let now = e.email_after.clone().unwrap_or_else(unknown);
        let when = e.created_at.format("%Y-%m-%d %H:%M UTC");
        let ko = format!("연결된 Google 계정이 {when}에 {before}에서 {now}(으)로 바뀌었습니다.");
        let en = format!("The connected Google account changed from {before} to {now} at {when}.");
        f.push(check("account", Outcome::Warning, &ko, &en));
        Ok(Some(cause(
            "account_changed",
            &format!("{ko} 연결은 정상이지만, 이전 계정의 메일과 캘린더는 더 이상 보이지 않습니다."),
            &format!("{en} The connection works, but the previous account's mail and calendar are no longer seen."),
            "의도한 변경이면 할 일이 없습니다. 아니라면 사용자가 재인증을 누르고 원래 계정을 골라야 합니다.",
            "Nothing to do if the change was meant; otherwise the user presses 재인증 and picks the original account.",
        )))
    }

    /// The `status` and `live_refresh` checks; returns the access token to
    /// inspect next, if there is a usable one.
    async fn status_and_refresh(
        &self,
        provider: &Provider,
        row: &TokenRow,
        f: &mut Findings,
    ) -> Result<Option<SecretString>, sqlx::Error> {
        if row.status != ConnectionStatus::Active {
            marked_broken_checks(row, f);
            return Ok(None);
        }
        f.push(check(
            "status",
            Outcome::Ok,
            "상태: 정상(active)",
            "Status: active",
        ));
        let result = self
            .refresh(provider, row.user_id, &ScopeSet::new(), true)
            .await;
        let stored_access = || {
            let stored = row.access_token.as_deref();
            let opened = self
                .cipher
                .open_opt(row.user_id, Field::AccessToken, stored);
            opened.ok().flatten()
        };
        match result {
            Ok(t) => {
                f.push(check(
                    "live_refresh",
                    Outcome::Ok,
                    "리프레시 토큰으로 새 액세스 토큰을 받았습니다.",
                    "The refresh token gave a new access token.",
                ));
                Ok(Some(t.access_token))
            }
            Err(TokenError::ReauthRequired(cause)) => {
                refused_refresh(&cause, row, f);
                Ok(None)
            }
            Err(TokenError::Unavailable { source, .. }) => {
                unreachable_google(&source, f);
                Ok(stored_access())
            }
            Err(TokenError::Misconfigured { source }) => {
                client_refused(&source, f);
                Ok(stored_access())
            }
            Err(TokenError::NotConnected) => {
                f.push(check(
                    "live_refresh",
                    Outcome::Skipped,
                    "연결이 방금 삭제되었습니다.",
                    "The connection was just removed.",
                ));
                Ok(stored_access())
            }
            Err(TokenError::ScopeMissing(_)) => Ok(stored_access()),
            Err(TokenError::Crypto(e)) => {
                undecryptable(&e, f);
                Ok(None)
            }
            Err(TokenError::Database(e)) => Err(e),
        }
    }

    /// What Google says about the access token; returns the required scopes
    /// Google does not list for it.
    async fn tokeninfo_check(
        &self,
        provider: &Provider,
        access: Option<&SecretString>,
        f: &mut Findings,
    ) -> ScopeSet {
        let Some(token) = access else {
            f.push(no_token_check("tokeninfo", "No access token to inspect."));
            return ScopeSet::new();
        };
        let info = match self.google.tokeninfo(token.expose_secret()).await {
            Ok(info) => info,
            Err(GoogleError::Rejected { code, .. }) => {
                f.push(check(
                    "tokeninfo",
                    Outcome::Problem,
                    format!("Google이 토큰을 모릅니다: {code}"),
                    format!("Google does not accept the token: {code}"),
                ));
                return ScopeSet::new();
            }
            Err(e) => {
                f.push(check(
                    "tokeninfo",
                    Outcome::Problem,
                    format!("tokeninfo 실패: {e}"),
                    format!("tokeninfo failed: {e}"),
                ));
                return ScopeSet::new();
            }
        };
        let google_scopes = ScopeSet::from_google(info.scope.as_deref().unwrap_or(""));
        let missing = provider.scopes.missing_from(&google_scopes);
        let aud_ok = info.aud.as_deref() == Some(self.google.client_id());
        f.push(tokeninfo_found(&google_scopes, aud_ok, missing.is_empty()));
        if !aud_ok {
            f.suspect(cause(
                "wrong_client",
                "토큰이 다른 OAuth 클라이언트에 발급되었습니다.",
                "The token was issued to another OAuth client.",
                "GOOGLE_CLIENT_ID를 확인하고, 사용자가 재인증을 누르게 하세요.",
                "Check GOOGLE_CLIENT_ID, then have the user press 재인증.",
            ));
        }
        missing
    }

    /// Try the Calendar API itself.
    async fn calendar_check(&self, access: Option<&SecretString>, f: &mut Findings) {
        let Some(token) = access else {
            f.push(no_token_check("calendar_api", "No access token to try."));
            return;
        };
        let (outcome, ko, en) = match self.google.calendar_probe(token.expose_secret()).await {
            Ok(CalendarProbe::Works) => (
                Outcome::Ok,
                "캘린더 API가 응답합니다.".to_string(),
                "The Calendar API answers.".to_string(),
            ),
            Ok(CalendarProbe::ScopeMissing) => (
                Outcome::Problem,
                "캘린더 API: 403 insufficientPermissions (권한 없음)".into(),
                "Calendar API: 403 insufficientPermissions (scope missing)".into(),
            ),
            Ok(CalendarProbe::ApiDisabled) => {
                f.suspect(calendar_disabled());
                (
                    Outcome::Problem,
                    "캘린더 API: 403 accessNotConfigured (API 사용 안 함)".into(),
                    "Calendar API: 403 accessNotConfigured (API not enabled)".into(),
                )
            }
            Ok(CalendarProbe::Unauthorized) => (
                Outcome::Problem,
                "캘린더 API: 401 (토큰이 유효하지 않음)".into(),
                "Calendar API: 401 (token not valid)".into(),
            ),
            Ok(CalendarProbe::Other(what)) => (
                Outcome::Problem,
                format!("캘린더 API: {what}"),
                format!("Calendar API: {what}"),
            ),
            Err(e) => (
                Outcome::Problem,
                format!("캘린더 API에 연결하지 못했습니다: {e}"),
                format!("Could not reach the Calendar API: {e}"),
            ),
        };
        f.push(check("calendar_api", outcome, ko, en));
    }
}

fn not_connected(provider: &Provider, user: Uuid) -> Diagnosis {
    Diagnosis {
        user_id: user,
        provider: provider.name,
        connected: false,
        email: None,
        status: None,
        granted_scopes: vec![],
        missing_scopes: provider.scopes.short_names(),
        cause: cause(
            "no_connection",
            "Gmail 패스포트가 연결되지 않았습니다.",
            "The Gmail Passport is not connected.",
            "사용자가 설정 > 아이템 > Gmail에서 연결하기를 눌러야 합니다.",
            "The user presses Connect in Settings > Items > Gmail.",
        ),
        checks: vec![check(
            "connection",
            Outcome::Problem,
            "gmail_token에 이 사용자의 행이 없습니다.",
            "There is no gmail_token row for this user.",
        )],
    }
}

/// Say when and how the scopes were corrected, and what Google's grant
/// lacks (then that is the cause: only 재인증 adds a permission).
fn edited_check(provider: &Provider, e: &EventRow, f: &mut Findings) -> Check {
    let before = ScopeSet::from_json(e.scopes_before.as_ref());
    let after = ScopeSet::from_json(e.scopes_after.as_ref());
    let at = e.created_at.format("%Y-%m-%d %H:%M:%S UTC");
    let lacks = provider.scopes.missing_from(&after);
    let (lack_ko, lack_en) = match lacks.is_empty() {
        true => (
            "Google의 권한에는 빠진 것이 없습니다".to_string(),
            "Google's grant lacks nothing required".to_string(),
        ),
        false => (
            format!("Google의 권한에 {lacks}이(가) 없습니다; 사용자가 재인증을 눌러야 합니다"),
            format!("Google's grant lacks {lacks}; the user must press 재인증"),
        ),
    };
    if !lacks.is_empty() {
        f.suspect(cause(
            "scopes_edited",
            &format!("gmail_token.scopes가 서비스 밖에서 수정되었습니다({at}에 Google의 권한으로 바로잡음). {lack_ko}."),
            &format!("The scopes were edited outside the service (corrected from Google at {at}). {lack_en}."),
            "scopes 열을 고쳐서는 권한이 생기지 않습니다. 사용자가 설정 > 아이템 > Gmail에서 재인증을 누르고 모든 항목을 체크해야 합니다.",
            "Editing the scopes column cannot add a permission. The user presses 재인증 (Settings > Items > Gmail) and ticks every box.",
        ));
    }
    check(
        "stored_scopes_verified",
        Outcome::Problem,
        format!("권한 목록이 서비스 밖에서 수정되었습니다: {at}에 바로잡음 (저장되어 있던 것: {before}; Google: {after}); {lack_ko}"),
        format!("scopes were edited outside the service; corrected at {at} (stored: {before}; Google: {after}); {lack_en}"),
    )
}

fn connection_check(row: &TokenRow) -> Check {
    check(
        "connection",
        Outcome::Ok,
        format!(
            "연결됨: {}",
            row.email.as_deref().unwrap_or("(이메일 모름)")
        ),
        format!(
            "Connected: {}",
            row.email.as_deref().unwrap_or("(email unknown)")
        ),
    )
}

fn stored_scopes_check(missing: &ScopeSet) -> Check {
    if missing.is_empty() {
        return check(
            "stored_scopes",
            Outcome::Ok,
            "필요한 권한이 모두 저장되어 있습니다.",
            "Every required scope is stored.",
        );
    }
    check(
        "stored_scopes",
        Outcome::Problem,
        format!("저장된 권한에 없는 것: {missing}"),
        format!("Stored scopes lack: {missing}"),
    )
}

/// The row is already marked: say so, and name the cause from the row.
fn marked_broken_checks(row: &TokenRow, f: &mut Findings) {
    let cause = row.reauth_cause();
    let status = row.status.as_str();
    f.push(check(
        "status",
        Outcome::Problem,
        format!("상태가 {status}입니다: {cause}"),
        format!("Status is {status}: {cause}"),
    ));
    f.push(check(
        "live_refresh",
        Outcome::Skipped,
        "이미 재인증 필요로 표시되어 새로 고침을 시도하지 않았습니다.",
        "Not tried: the connection is already marked as needing 재인증.",
    ));
    f.suspect(match cause {
        ReauthCause::NoRefreshToken => no_refresh_token(
            "리프레시 토큰이 저장되어 있지 않습니다(이전 서비스에서 옮겨온 행이거나 Google이 주지 않음).",
            "No refresh token is stored (a row carried over from the old service, or Google sent none).",
        ),
        other => refusal_cause(&other, row.consented_at, row.updated_at),
    });
}

fn refused_refresh(why: &ReauthCause, row: &TokenRow, f: &mut Findings) {
    f.push(check(
        "live_refresh",
        Outcome::Problem,
        format!("Google이 새로 고침을 거부했습니다: {why}"),
        format!("Google refused the refresh: {why}"),
    ));
    f.suspect(match why {
        ReauthCause::NoRefreshToken => no_refresh_token(
            "리프레시 토큰이 저장되어 있지 않습니다.",
            "No refresh token is stored.",
        ),
        other => refusal_cause(other, row.consented_at, Utc::now()),
    });
}

/// Two account emails name the same account (Google's are case-insensitive).
fn same_account(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// The cause of a refusal that marked the connection: `invalid_grant` (and
/// a note of another writer) named as far as it can be told, the others by
/// what the user or their admin does next.
fn refusal_cause(
    why: &ReauthCause,
    consented_at: Option<DateTime<Utc>>,
    failed_at: DateTime<Utc>,
) -> Cause {
    match why {
        ReauthCause::InvalidGrant { .. } | ReauthCause::Recorded(_) => {
            invalid_grant_cause(&why.to_string(), consented_at, failed_at)
        }
        other => policy_cause(other),
    }
}

/// The refusals a user or a Workspace admin acts on; any other cause (one
/// added later included) is told by its code, with 재인증 as the fix.
fn policy_cause(why: &ReauthCause) -> Cause {
    let said = why.to_string();
    match why {
        ReauthCause::InvalidRapt { .. } => cause(
            "invalid_rapt",
            &format!("사용자의 Google Workspace가 일정 시간마다 다시 로그인하도록 요구합니다({said}). 토큰이 취소된 것도, 권한 문제도 아닙니다."),
            &format!("The user's Google Workspace requires them to sign in again periodically ({said}). The grant is not revoked and no scope is missing."),
            "사용자가 재인증을 누르면 됩니다. 자주 반복되면 Workspace 관리자가 관리 콘솔(보안 > 액세스 및 데이터 제어 > Google Cloud 세션 제어)에서 재인증 주기를 늘리거나 이 앱을 '신뢰함'으로 지정하게 하세요.",
            "The user presses 재인증. If it keeps coming back, the Workspace admin lengthens the re-authentication interval (Admin console > Security > Access and data control > Google Cloud session control) or marks this app as Trusted.",
        ),
        ReauthCause::AdminPolicyEnforced { .. } => cause(
            "admin_policy_enforced",
            &format!("사용자의 Google Workspace 관리자가 이 앱이나 그 권한(scope)을 막았습니다({said})."),
            &format!("The user's Google Workspace admin blocks this app or one of its scopes ({said})."),
            "Workspace 관리자가 관리 콘솔(보안 > API 제어 > 타사 앱 액세스 관리)에서 이 앱의 클라이언트 ID를 '신뢰함'으로 지정하고 Gmail·캘린더 권한을 허용해야 합니다. 그 전에는 재인증만으로 해결되지 않습니다. 허용된 뒤 사용자가 재인증을 누르세요.",
            "The Workspace admin marks this app's client ID as Trusted (Admin console > Security > API controls > Manage third-party app access) and allows the Gmail and Calendar scopes. 재인증 alone does not help before that; once allowed, the user presses 재인증.",
        ),
        ReauthCause::OrgInternal { .. } => cause(
            "org_internal",
            &format!("이 OAuth 앱은 '내부' 앱이라 그 조직의 계정만 쓸 수 있는데, 연결된 계정은 그 조직의 계정이 아닙니다({said})."),
            &format!("The OAuth app is Internal (only accounts of its organisation may use it) and the connected account is not one of them ({said})."),
            "사용자가 재인증을 누르고 조직의 계정을 고르게 하세요. 외부 계정도 받아야 한다면 운영자가 Cloud Console의 OAuth 동의 화면에서 사용자 유형을 '외부'로 바꾸세요.",
            "The user presses 재인증 and picks an account of the organisation. If outside accounts must work, operators set the OAuth consent screen's user type to External in Cloud Console.",
        ),
        ReauthCause::AccessDenied { .. } => cause(
            "access_denied",
            &format!("Google이 이 연결의 접근을 거부했습니다({said})."),
            &format!("Google denied access for this connection ({said})."),
            REAUTH_FIX_KO,
            REAUTH_FIX_EN,
        ),
        ReauthCause::Signal(s) => signal_cause(s.kind, &said),
        other => cause(
            other.code(),
            &format!("연결에 재인증이 필요합니다({said})."),
            &format!("The connection needs 재인증 ({said})."),
            REAUTH_FIX_KO,
            REAUTH_FIX_EN,
        ),
    }
}

/// A connection Google's revocation signal (RISC) marked: what Google
/// said, and what the user does before 재인증 can help.
fn signal_cause(kind: SignalKind, said: &str) -> Cause {
    let (fix_ko, fix_en) = match kind {
        SignalKind::AccountDisabled => (
            "사용자가 먼저 Google에서 계정을 복구해야 합니다(Google 계정에 로그인하면 복구 안내가 나옵니다). 복구되기 전에는 재인증만으로 해결되지 않습니다. 복구한 뒤 재인증을 누르세요.",
            "The user first restores the Google account with Google (signing in to it shows how); 재인증 alone does not help before that. Once restored, the user presses 재인증.",
        ),
        SignalKind::CredentialChangeRequired => (
            "사용자가 먼저 Google 계정의 비밀번호를 바꾼 뒤 재인증을 눌러야 합니다.",
            "The user first changes the Google account's password, then presses 재인증.",
        ),
        SignalKind::TokensRevoked | SignalKind::TokenRevoked | SignalKind::SessionsRevoked => {
            (REAUTH_FIX_KO, REAUTH_FIX_EN)
        }
    };
    cause(
        kind.code(),
        &format!("Google이 보안 이벤트(RISC)를 보냈습니다: {said}"),
        &format!("Google pushed a security event (RISC): {said}"),
        fix_ko,
        fix_en,
    )
}

fn unreachable_google(source: &GoogleError, f: &mut Findings) {
    if let GoogleError::RateLimited { .. } = source {
        f.push(check(
            "live_refresh",
            Outcome::Problem,
            "Google이 이 서비스의 호출 횟수를 제한하고 있습니다(rate limit).",
            "Google is rate limiting this service's calls.",
        ));
        return f.suspect(cause(
            "rate_limited",
            "Google이 이 서비스의 호출을 잠시 제한했습니다. 연결 자체에는 문제가 없습니다.",
            "Google is limiting this service's calls for a while; the connection itself is fine.",
            "잠시(Retry-After) 기다린 뒤 다시 진단하세요. 계속되면 Cloud Console(API 및 서비스 > 할당량)에서 할당량을 확인하세요.",
            "Wait (Retry-After) and run the doctor again. If it lasts, check the quotas in Cloud Console (APIs & Services > Quotas).",
        ));
    }
    f.push(check(
        "live_refresh",
        Outcome::Problem,
        format!("Google에 연결하지 못했습니다: {source}"),
        format!("Could not reach Google: {source}"),
    ));
    f.suspect(cause(
        "google_unavailable",
        "Google이 응답하지 않습니다. 연결 자체에는 문제가 없을 수 있습니다.",
        "Google is not answering; the connection itself may be fine.",
        "잠시 후 다시 진단하세요.",
        "Run the doctor again in a while.",
    ));
}

fn client_refused(source: &GoogleError, f: &mut Findings) {
    if source.refusal() == Some(crate::google::Refusal::InvalidScope) {
        f.push(check(
            "live_refresh",
            Outcome::Problem,
            format!("Google이 이 서비스가 요청하는 권한(scope)을 거부했습니다: {source}"),
            format!("Google refused a scope this service asks for: {source}"),
        ));
        return f.suspect(cause(
            "invalid_scope",
            "Google이 우리가 요청하는 권한(scope) 하나를 유효하지 않다고 합니다. 사용자의 문제가 아닙니다.",
            "Google says a scope this service asks for is not valid. This is not the user's fault.",
            "GMAIL_PASSPORT_SCOPES의 값이 Google의 scope 이름과 맞는지, Cloud Console의 OAuth 동의 화면에 그 scope가 등록되어 있는지 확인하세요.",
            "Check that GMAIL_PASSPORT_SCOPES names Google scopes correctly and that they are registered on the OAuth consent screen in Cloud Console.",
        ));
    }
    f.push(check(
        "live_refresh",
        Outcome::Problem,
        format!("Google이 우리 OAuth 클라이언트를 거부했습니다: {source}"),
        format!("Google refused our OAuth client: {source}"),
    ));
    f.suspect(cause(
        "wrong_client",
        "Google이 우리 OAuth 클라이언트를 거부했습니다. 사용자의 문제가 아닙니다.",
        "Google refused our OAuth client. This is not the user's fault.",
        "GOOGLE_CLIENT_ID와 GOOGLE_CLIENT_SECRET이 Cloud Console의 값과 같은지(비밀번호가 교체되지 않았는지, 클라이언트가 삭제되지 않았는지) 확인하세요.",
        "Check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET against Cloud Console (a rotated secret, a deleted client).",
    ));
}

fn undecryptable(e: &crate::crypto::CryptoError, f: &mut Findings) {
    f.push(check(
        "live_refresh",
        Outcome::Problem,
        format!("저장된 토큰을 복호화할 수 없습니다: {e}"),
        format!("The stored token cannot be decrypted: {e}"),
    ));
    f.suspect(cause(
        "token_undecryptable",
        "저장된 토큰의 암호화 키가 설정에 없습니다.",
        "The key the stored token was encrypted with is not configured.",
        "TOKEN_ENCRYPTION_KEYS에 그 키를 다시 넣거나, 사용자가 재인증을 누르게 하세요.",
        "Put that key back into TOKEN_ENCRYPTION_KEYS, or have the user press 재인증.",
    ));
}

fn no_refresh_token(ko: &str, en: &str) -> Cause {
    cause("no_refresh_token", ko, en, REAUTH_FIX_KO, REAUTH_FIX_EN)
}

fn no_token_check(name: &'static str, en: &str) -> Check {
    check(name, Outcome::Skipped, "확인할 액세스 토큰이 없습니다.", en)
}

fn tokeninfo_found(google_scopes: &ScopeSet, aud_ok: bool, complete: bool) -> Check {
    let (aud_ko, aud_en) = match aud_ok {
        true => ("일치", "matches our client"),
        false => ("불일치", "is another client"),
    };
    check(
        "tokeninfo",
        if aud_ok && complete {
            Outcome::Ok
        } else {
            Outcome::Problem
        },
        format!("Google이 말하는 토큰 권한: {google_scopes}; 클라이언트(aud) {aud_ko}"),
        format!("Google says the token has: {google_scopes}; audience (aud) {aud_en}"),
    )
}

fn calendar_disabled() -> Cause {
    cause(
        "calendar_api_disabled",
        "Cloud 프로젝트에서 Google Calendar API가 사용 설정되어 있지 않습니다. 사용자 권한 문제가 아닙니다.",
        "The Google Calendar API is not enabled in the Cloud project. This is not the user's permissions.",
        "Cloud Console > API 및 서비스 > 라이브러리에서 Google Calendar API를 사용 설정하세요. 재인증은 필요 없습니다.",
        "Enable the Google Calendar API in Cloud Console (APIs & Services > Library). No 재인증 needed.",
    )
}

/// No check named a cause: scopes missing somewhere, or everything works.
fn final_cause(all_missing: &ScopeSet) -> Cause {
    if all_missing.is_empty() {
        return cause(
            "works",
            "문제가 없습니다: 토큰, 권한, 캘린더 API 모두 정상입니다.",
            "Everything works: token, scopes and the Calendar API.",
            "할 일이 없습니다.",
            "Nothing to do.",
        );
    }
    Cause {
        code: "scope_missing",
        ko: format!(
            "연결은 정상이지만 권한이 빠져 있습니다: {all_missing}. 토큰이 취소된 것이 아닙니다."
        ),
        en: format!(
            "The connection works but lacks scopes: {all_missing}. The grant is not revoked."
        ),
        fix_ko: REAUTH_FIX_KO.into(),
        fix_en: REAUTH_FIX_EN.into(),
    }
}

/// The answer, with the connection as it is after the checks (a live refresh
/// may have changed it).
fn summary(
    provider: &Provider,
    before: &TokenRow,
    fresh: Option<TokenRow>,
    cause: Cause,
    checks: Vec<Check>,
) -> Diagnosis {
    let (email, status, granted) = match &fresh {
        Some(r) => (
            r.email.clone(),
            Some(r.status),
            ScopeSet::from_json(r.scopes.as_ref()),
        ),
        None => (
            before.email.clone(),
            None,
            ScopeSet::from_json(before.scopes.as_ref()),
        ),
    };
    Diagnosis {
        user_id: before.user_id,
        provider: provider.name,
        connected: fresh.is_some(),
        email,
        status,
        missing_scopes: provider.scopes.missing_from(&granted).short_names(),
        granted_scopes: granted.short_names(),
        cause,
        checks,
    }
}

impl Diagnosis {
    /// Plain text for the terminal, Korean first.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "user {}  provider {}  email {}  status {}\n\n",
            self.user_id,
            self.provider,
            self.email.as_deref().unwrap_or("-"),
            self.status
                .map_or("not connected", ConnectionStatus::as_str),
        ));
        for c in &self.checks {
            let mark = match c.outcome {
                Outcome::Ok => "ok  ",
                Outcome::Problem => "FAIL",
                Outcome::Skipped => "skip",
                Outcome::Warning => "warn",
            };
            out.push_str(&format!(
                "[{mark}] {:<14} {}\n                    {}\n",
                c.name, c.ko, c.en
            ));
        }
        out.push_str(&format!(
            "\n원인 / cause ({}):\n  {}\n  {}\n해결 / fix:\n  {}\n  {}\n",
            self.cause.code, self.cause.ko, self.cause.en, self.cause.fix_ko, self.cause.fix_en
        ));
        out
    }
}
