//! Errors, one type per audience:
//! [`ApiError`] answers scripts and skills in JSON; [`PageError`] answers a
//! person in a browser with a page that says what happened and what to do,
//! Korean first. Neither ever carries internal error text: 5xx bodies are fixed
//! strings, and the cause goes to the log (which never holds secrets).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::http::copy::{self, PageCopy};
use crate::passport::flow::FlowError;
use crate::passport::token::{TokenError, UpstreamCause};
use crate::store;
use crate::store::gmail_token::ReauthCause;
use crate::store::risc_event::SignalKind;

/// `Retry-After` when the database is unavailable, in seconds.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// Every `error` code the JSON APIs answer with (docs/architecture.md lists
/// them with their statuses).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    NotConnected,
    ScopeMissing,
    ReauthRequired,
    UpstreamUnavailable,
    UpstreamMisconfigured,
    DatabaseUnavailable,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Can the user fix this by pressing 재인증?
    fn offers_reauth(self) -> bool {
        matches!(
            self,
            Self::NotConnected | Self::ScopeMissing | Self::ReauthRequired
        )
    }
}

/// A JSON error: `{"error": CODE, "message": …, "reauth_url"?: …, "missing"?: […]}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reauth_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
    /// Why, next to `error`: a `ReauthCause` code (`invalid_grant`,
    /// `invalid_rapt`, …) or an upstream cause (`rate_limited`,
    /// `client_misconfigured`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// Seconds, sent as `Retry-After`.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
            reauth_url: None,
            missing: None,
            cause: None,
            retry_after: None,
        }
    }

    /// Over a rate limit: 429 with `Retry-After`.
    pub fn rate_limited(limited: crate::http::limits::Limited) -> Self {
        let secs = limited.0.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("too many requests; retry in {secs} s"),
            )
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// The database cannot do the work now (down, stalled, a lock or a
    /// statement over its timeout): 503 with `Retry-After`, the cause logged.
    pub fn database_unavailable(cause: &sqlx::Error) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self {
            retry_after: Some(DATABASE_RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable; try again later",
            )
        }
    }

    /// Not answered in time (request timeout) or cut by the shutdown: 503,
    /// retry in a second.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                message,
            )
        }
    }

    /// A failure of ours: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; try again later",
        )
    }
}

impl From<crate::http::UnknownProvider> for ApiError {
    fn from(p: crate::http::UnknownProvider) -> Self {
        Self::not_found(format!("no passport provider named `{}`", p.0))
    }
}

impl From<crate::http::UnknownProvider> for PageError {
    fn from(_: crate::http::UnknownProvider) -> Self {
        Self::NotFound
    }
}

impl ApiError {
    /// Point at 재인증 when that is what fixes this error.
    pub fn with_reauth_url(mut self, url: &url::Url) -> Self {
        if self.error.offers_reauth() {
            self.reauth_url = Some(url.to_string());
        }
        self
    }
}

/// The token API's answers: what the skill is told, and what it does next.
impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let cause = e.cause();
        Self {
            cause,
            ..Self::from_token_error(e)
        }
    }
}

impl ApiError {
    fn from_token_error(e: TokenError) -> Self {
        match e {
            TokenError::NotConnected => Self::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotConnected,
                "this user has not connected a Gmail Passport; they must connect it in Settings > Items > Gmail",
            ),
            TokenError::ScopeMissing(missing) => Self {
                missing: Some(missing.short_names()),
                ..Self::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::ScopeMissing,
                    format!(
                        "the user's Google grant lacks {missing}; the user must press 재인증 and tick those permissions (the grant itself is fine)"
                    ),
                )
            },
            TokenError::ReauthRequired(cause) => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::ReauthRequired,
                reauth_message(&cause),
            ),
            TokenError::Unavailable { source, retry_after } => {
                let secs = retry_after.as_secs().max(1);
                let message = match UpstreamCause::of(&source) {
                    UpstreamCause::RateLimited => format!(
                        "Google is limiting this service's calls; nothing was changed, try again in {secs} s"
                    ),
                    _ => format!("{source}; nothing was changed, try again later"),
                };
                Self {
                    retry_after: Some(secs),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorCode::UpstreamUnavailable,
                        message,
                    )
                }
            }
            TokenError::Misconfigured { source }
                if UpstreamCause::of(&source) == UpstreamCause::InvalidScope =>
            {
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::UpstreamMisconfigured,
                    format!(
                        "{source}: Google refuses a scope this service asks for; retrying will not help, operators must fix GMAIL_PASSPORT_SCOPES"
                    ),
                )
            }
            TokenError::Misconfigured { source } => Self::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::UpstreamMisconfigured,
                format!(
                    "{source}: Google refuses this service's OAuth client; retrying will not help, operators must fix GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET"
                ),
            ),
            // Names the key id, never a secret.
            TokenError::Crypto(e) => Self {
                message: format!("{e}; operators: check TOKEN_ENCRYPTION_KEYS"),
                ..Self::internal(&e)
            },
            TokenError::Database(e) => e.into(),
        }
    }
}

/// Why a connection needs 재인증 and what to do, for the token API.
fn reauth_message(cause: &ReauthCause) -> String {
    let next = reauth_next_step(cause);
    match cause {
        ReauthCause::Signal(s) => {
            format!("{} ({}); {next}", s.kind.message(), cause.code())
        }
        _ => format!(
            "Google no longer accepts this user's refresh token ({}); {next}",
            cause.code()
        ),
    }
}

/// What a skill tells its user to do about a connection that needs 재인증.
fn reauth_next_step(cause: &ReauthCause) -> &'static str {
    match cause {
        ReauthCause::AdminPolicyEnforced { .. } => {
            "the user's Google Workspace admin must allow this app and its scopes; then the user presses 재인증"
        }
        ReauthCause::OrgInternal { .. } => {
            "this app is limited to its organisation's accounts; the user must press 재인증 and choose an account of it"
        }
        ReauthCause::InvalidRapt { .. } => {
            "the user's Workspace asks them to sign in again; the user must press 재인증"
        }
        ReauthCause::Signal(s) => signal_next_step(s.kind),
        _ => "the user must press 재인증",
    }
}

/// What a skill tells its user about a connection Google's revocation
/// signal (RISC) marked.
fn signal_next_step(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::AccountDisabled => {
            "Google disabled the user's Google account; the user must first restore it with Google (재인증 does not help before that), then press 재인증"
        }
        SignalKind::CredentialChangeRequired => {
            "Google requires the user to change their Google account's password; the user must change it first, then press 재인증"
        }
        SignalKind::TokensRevoked | SignalKind::TokenRevoked | SignalKind::SessionsRevoked => {
            "the user must press 재인증"
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::ReturnTo(r) => Self::bad_request(format!(
                "{r}; allowed origins are PUBLIC_BASE_URL and ALLOWED_RETURN_ORIGINS"
            )),
            FlowError::Database(e) => e.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if store::is_unavailable(&e) {
            Self::database_unavailable(&e)
        } else {
            Self::internal(&e)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(&self)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Every kind of error page a person can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// No valid ro-being session; the link to ro-being's sign-in (coming
    /// back to the page asked for), when `LOGIN_URL` is set.
    SignInNeeded(Option<String>),
    /// Unknown provider or page.
    NotFound,
    /// The request itself is malformed (duplicated or oversized parameters, …).
    BadRequest,
    /// `return_to` points somewhere we do not send people.
    ReturnToRefused,
    /// The callback has no state, or one we never issued or already used.
    StateUnknown,
    /// The consent took longer than 10 minutes.
    StateExpired,
    /// An earlier callback of this consent stopped before it finished.
    AttemptInterrupted,
    /// The flow was started in another browser (or its cookie is gone).
    BrowserMismatch,
    /// The flow was started by another ro-being user than the one signed in.
    UserMismatch,
    /// A state-changing request that did not come from our own pages.
    CrossSite,
    /// Too many requests; retry after this many seconds.
    RateLimited(u64),
    /// The database cannot do the work now; retry after this many seconds.
    DatabaseUnavailable(u64),
    /// Google had to be asked (a scope list no MAC vouches for) and could
    /// not be; retry after this many seconds.
    UpstreamUnavailable(u64),
    /// Our failure.
    Internal,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    copy: &'static PageCopy,
    /// The one button that helps; `None`: the text says where to go.
    action: Option<PageAction>,
}

/// The button of an error page: where it leads and what it says.
#[derive(Debug)]
struct PageAction {
    href: String,
    ko: &'static str,
    en: &'static str,
}

/// Where a person finds the Gmail Passport again (the item page).
const PASSPORT_PAGE: &str = "/passport/gmail";

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SignInNeeded(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest | Self::ReturnToRefused | Self::StateUnknown | Self::StateExpired => {
                StatusCode::BAD_REQUEST
            }
            Self::BrowserMismatch | Self::UserMismatch | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::AttemptInterrupted => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::DatabaseUnavailable(_) | Self::UpstreamUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the page says (the sentences are in [`copy`]).
    fn copy(&self) -> &'static PageCopy {
        match self {
            Self::SignInNeeded(Some(_)) => &copy::SIGN_IN_NEEDED,
            Self::SignInNeeded(None) => &copy::SIGN_IN_NEEDED_NO_LINK,
            Self::NotFound => &copy::NOT_FOUND,
            Self::BadRequest => &copy::BAD_REQUEST,
            Self::ReturnToRefused => &copy::RETURN_TO_REFUSED,
            Self::StateUnknown => &copy::STATE_UNKNOWN,
            Self::StateExpired => &copy::STATE_EXPIRED,
            Self::AttemptInterrupted => &copy::ATTEMPT_INTERRUPTED,
            Self::BrowserMismatch => &copy::BROWSER_MISMATCH,
            Self::UserMismatch => &copy::USER_MISMATCH,
            Self::CrossSite => &copy::CROSS_SITE,
            Self::RateLimited(_) => &copy::RATE_LIMITED,
            Self::DatabaseUnavailable(_) => &copy::DATABASE_UNAVAILABLE,
            Self::UpstreamUnavailable(_) => &copy::UPSTREAM_UNAVAILABLE,
            Self::Internal => &copy::INTERNAL,
        }
    }

    /// The one action that helps: sign in (with `LOGIN_URL`), try again
    /// (a pause: rate limit, outage, our failure), or back to the item page
    /// to start over.
    fn action(&self) -> Option<PageAction> {
        let passport = |ko, en| PageAction {
            href: PASSPORT_PAGE.into(),
            ko,
            en,
        };
        match self {
            Self::SignInNeeded(link) => link.as_ref().map(|href| PageAction {
                href: href.clone(),
                ko: "로그인",
                en: "Sign in",
            }),
            Self::RateLimited(_)
            | Self::DatabaseUnavailable(_)
            | Self::UpstreamUnavailable(_)
            | Self::Internal => Some(passport("다시 시도", "Try again")),
            Self::NotFound => Some(passport("Gmail 패스포트 열기", "Open Gmail Passport")),
            Self::ReturnToRefused
            | Self::StateExpired
            | Self::AttemptInterrupted
            | Self::BrowserMismatch => Some(passport("처음부터 다시 하기", "Start over")),
            Self::BadRequest | Self::StateUnknown | Self::UserMismatch | Self::CrossSite => Some(
                passport("Gmail 패스포트로 돌아가기", "Back to Gmail Passport"),
            ),
        }
    }

    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal
    }
}

impl From<crate::http::limits::Limited> for PageError {
    fn from(l: crate::http::limits::Limited) -> Self {
        Self::RateLimited(l.0.as_secs_f64().ceil().max(1.0) as u64)
    }
}

impl From<crate::http::limits::Limited> for ApiError {
    fn from(l: crate::http::limits::Limited) -> Self {
        Self::rate_limited(l)
    }
}

impl From<FlowError> for PageError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::ReturnTo(_) => PageError::ReturnToRefused,
            FlowError::MissingState | FlowError::UnknownState => PageError::StateUnknown,
            FlowError::ExpiredState => PageError::StateExpired,
            FlowError::Interrupted => PageError::AttemptInterrupted,
            FlowError::BrowserMismatch => PageError::BrowserMismatch,
            FlowError::UserMismatch => PageError::UserMismatch,
            FlowError::NoSession => PageError::SignInNeeded(None),
            FlowError::Database(e) => e.into(),
            FlowError::Crypto(e) => PageError::internal(&e),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        if store::is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            Self::DatabaseUnavailable(DATABASE_RETRY_AFTER_SECS)
        } else {
            Self::internal(&e)
        }
    }
}

/// The item page's state read (a scope list checked with Google first).
impl From<TokenError> for PageError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Database(e) => e.into(),
            TokenError::Unavailable {
                source,
                retry_after,
            } => {
                tracing::warn!(error = %source, "google unavailable while checking scopes");
                Self::UpstreamUnavailable(retry_after.as_secs().max(1))
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = ErrorPage {
            status: status.as_u16(),
            copy: self.copy(),
            action: self.action(),
        };
        let retry = match self {
            Self::RateLimited(secs)
            | Self::DatabaseUnavailable(secs)
            | Self::UpstreamUnavailable(secs) => Some(secs),
            _ => None,
        };
        match page.render() {
            Ok(html) => {
                let mut resp = (status, Html(html)).into_response();
                if let Some(secs) = retry {
                    resp.headers_mut().insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from(secs),
                    );
                }
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, "error page did not render");
                (status, page.copy.title_en).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_page_error() -> Vec<PageError> {
        vec![
            PageError::SignInNeeded(Some("https://ro-being.com/login?return_to=x".into())),
            PageError::SignInNeeded(None),
            PageError::NotFound,
            PageError::BadRequest,
            PageError::ReturnToRefused,
            PageError::StateUnknown,
            PageError::StateExpired,
            PageError::AttemptInterrupted,
            PageError::BrowserMismatch,
            PageError::UserMismatch,
            PageError::CrossSite,
            PageError::RateLimited(30),
            PageError::DatabaseUnavailable(5),
            PageError::UpstreamUnavailable(5),
            PageError::Internal,
        ]
    }

    #[test]
    fn every_error_page_has_a_title_and_the_one_action_that_helps() {
        for e in every_page_error() {
            let page = ErrorPage {
                status: e.status().as_u16(),
                copy: e.copy(),
                action: e.action(),
            };
            let html = page.render().unwrap();
            let title = format!(
                "<title>{} · {}</title>",
                e.copy().title_ko,
                e.copy().title_en
            );
            assert!(html.contains(&title), "{e:?}: {html}");
            let buttons = html.matches("class=\"button primary\"").count();
            let expected = usize::from(e != PageError::SignInNeeded(None));
            assert_eq!(buttons, expected, "{e:?}");
        }
    }

    #[test]
    fn waits_and_failures_offer_a_retry_and_sign_in_leads_to_login() {
        for e in [
            PageError::RateLimited(1),
            PageError::DatabaseUnavailable(1),
            PageError::Internal,
        ] {
            assert_eq!(e.action().unwrap().ko, "다시 시도", "{e:?}");
        }
        let a = PageError::SignInNeeded(Some("https://x/login".into()))
            .action()
            .unwrap();
        assert_eq!((a.ko, a.href.as_str()), ("로그인", "https://x/login"));
    }
}
