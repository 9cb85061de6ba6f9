//! Errors, one type per audience:
//! [`ApiError`] answers scripts and skills in JSON; [`PageError`] answers a
//! person in a browser with a page that says what happened and what to do,
//! Korean first. Neither ever carries internal error text: 5xx bodies are fixed
//! strings, and the cause goes to the log (which never holds secrets).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::passport::flow::FlowError;
use crate::passport::token::TokenError;

/// Every `error` code the JSON APIs answer with (docs/architecture.md lists
/// them with their statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
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
                format!(
                    "Google no longer accepts this user's refresh token ({}); the user must press 재인증",
                    cause.code()
                ),
            ),
            TokenError::Unavailable { source, retry_after } => Self {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::UpstreamUnavailable,
                    format!("{source}; nothing was changed, try again later"),
                )
            },
            // Names the key id, never a secret.
            TokenError::Crypto(e) => Self {
                message: format!("{e}; operators: check TOKEN_ENCRYPTION_KEYS"),
                ..Self::internal(&e)
            },
            TokenError::Database(e) => Self::internal(&e),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::ReturnTo(r) => Self::bad_request(format!(
                "{r}; allowed origins are PUBLIC_BASE_URL and ALLOWED_RETURN_ORIGINS"
            )),
            other => Self::internal(&other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
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
    /// No valid ro-being session.
    SignInNeeded,
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
    /// The flow was started in another browser (or its cookie is gone).
    BrowserMismatch,
    /// The flow was started by another ro-being user than the one signed in.
    UserMismatch,
    /// A state-changing request that did not come from our own pages.
    CrossSite,
    /// Too many requests; retry after this many seconds.
    RateLimited(u64),
    /// Our failure.
    Internal,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title_ko: &'a str,
    title_en: &'a str,
    what_ko: &'a str,
    what_en: &'a str,
    next_ko: &'a str,
    next_en: &'a str,
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SignInNeeded => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest | Self::ReturnToRefused | Self::StateUnknown | Self::StateExpired => {
                StatusCode::BAD_REQUEST
            }
            Self::BrowserMismatch | Self::UserMismatch | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// (title ko, title en, what happened ko, en, what to do ko, en)
    fn texts(&self) -> [&'static str; 6] {
        match self {
            Self::SignInNeeded => [
                "로그인이 필요합니다",
                "Sign-in needed",
                "ro-being에 로그인되어 있지 않거나 로그인이 만료되었습니다.",
                "You are not signed in to ro-being, or your session has expired.",
                "ro-being에 다시 로그인한 뒤 설정 > 아이템 > Gmail에서 다시 시도해 주세요.",
                "Sign in to ro-being again, then retry from Settings > Items > Gmail.",
            ],
            Self::NotFound => [
                "페이지를 찾을 수 없습니다",
                "Page not found",
                "요청한 주소에 해당하는 페이지나 패스포트가 없습니다.",
                "There is no page or passport at this address.",
                "설정 > 아이템에서 Gmail 패스포트를 열어 주세요.",
                "Open the Gmail Passport from Settings > Items.",
            ],
            Self::BadRequest => [
                "잘못된 요청입니다",
                "Bad request",
                "요청 주소의 매개변수가 중복되었거나 너무 깁니다.",
                "The request's parameters are duplicated or too long.",
                "설정 > 아이템 > Gmail에서 버튼을 눌러 다시 시작해 주세요.",
                "Start again with the button in Settings > Items > Gmail.",
            ],
            Self::ReturnToRefused => [
                "허용되지 않은 돌아갈 주소입니다",
                "Return address not allowed",
                "인증이 끝난 뒤 돌아갈 주소(return_to)가 ro-being의 주소가 아니어서 진행하지 않았습니다. 아무것도 바뀌지 않았습니다.",
                "The address to return to after consent (return_to) is not a ro-being address, so nothing was started. Nothing changed.",
                "ro-being의 설정 > 아이템 > Gmail에서 재인증 버튼을 눌러 주세요.",
                "Press the 재인증 (re-authorize) button in ro-being's Settings > Items > Gmail.",
            ],
            Self::StateUnknown => [
                "이미 처리되었거나 알 수 없는 인증 요청입니다",
                "This consent was already handled or is unknown",
                "이 주소는 이미 한 번 사용되었거나(뒤로 가기, 새로 고침) 이 서비스가 만든 요청이 아닙니다. 연결은 바뀌지 않았습니다.",
                "This address was already used (back button or reload) or was not issued by this service. Your connection did not change.",
                "Gmail 패스포트 페이지에서 현재 상태를 확인하고, 필요하면 재인증을 다시 눌러 주세요.",
                "Check the current state on the Gmail Passport page and press 재인증 again if needed.",
            ],
            Self::StateExpired => [
                "인증 시간이 지났습니다",
                "The consent took too long",
                "Google 동의 화면에서 10분 넘게 머물러 요청이 만료되었습니다. 연결은 바뀌지 않았습니다.",
                "More than 10 minutes passed on Google's consent screen, so the request expired. Your connection did not change.",
                "재인증 버튼을 다시 누르고 10분 안에 동의를 마쳐 주세요.",
                "Press 재인증 again and finish the consent within 10 minutes.",
            ],
            Self::BrowserMismatch => [
                "다른 브라우저에서 시작된 인증입니다",
                "This consent was started in another browser",
                "인증을 시작한 브라우저와 지금 브라우저가 다르거나, 쿠키가 지워졌습니다. 안전을 위해 진행하지 않았습니다. 연결은 바뀌지 않았습니다.",
                "The consent was started in a different browser, or its cookie was cleared. For your safety nothing was done. Your connection did not change.",
                "이 브라우저에서 Gmail 패스포트 페이지를 열고 재인증을 다시 눌러 주세요.",
                "Open the Gmail Passport page in this browser and press 재인증 again.",
            ],
            Self::UserMismatch => [
                "다른 사용자의 인증 요청입니다",
                "This consent belongs to another user",
                "이 인증은 지금 로그인한 ro-being 계정이 시작한 것이 아닙니다. 연결은 바뀌지 않았습니다.",
                "This consent was not started by the ro-being account that is signed in now. No connection changed.",
                "본인 계정으로 로그인한 뒤 재인증을 다시 눌러 주세요.",
                "Sign in with your own account and press 재인증 again.",
            ],
            Self::CrossSite => [
                "다른 사이트에서 온 요청입니다",
                "Request from another site",
                "이 요청은 Gmail 패스포트 페이지에서 보낸 것이 아니어서 처리하지 않았습니다. 아무것도 바뀌지 않았습니다.",
                "This request was not sent from the Gmail Passport page, so it was not carried out. Nothing changed.",
                "Gmail 패스포트 페이지를 열고 버튼을 직접 눌러 주세요.",
                "Open the Gmail Passport page and press the button there.",
            ],
            Self::RateLimited(_) => [
                "요청이 너무 많습니다",
                "Too many requests",
                "짧은 시간에 요청이 너무 많이 와서 잠시 멈췄습니다. 아무것도 바뀌지 않았습니다.",
                "Too many requests arrived in a short time, so this one was paused. Nothing changed.",
                "1분쯤 기다린 뒤 다시 시도해 주세요.",
                "Wait about a minute, then try again.",
            ],
            Self::Internal => [
                "일시적인 오류가 발생했습니다",
                "Something went wrong on our side",
                "요청을 처리하는 중에 서버 오류가 발생했습니다.",
                "The server failed while handling the request.",
                "잠시 후 다시 시도해 주세요. 계속되면 ro-being 고객센터에 알려 주세요.",
                "Try again in a moment. If it keeps happening, contact ro-being support.",
            ],
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
            FlowError::BrowserMismatch => PageError::BrowserMismatch,
            FlowError::UserMismatch => PageError::UserMismatch,
            FlowError::NoSession => PageError::SignInNeeded,
            FlowError::Database(e) => PageError::internal(&e),
            FlowError::Crypto(e) => PageError::internal(&e),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(&e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let [title_ko, title_en, what_ko, what_en, next_ko, next_en] = self.texts();
        let status = self.status();
        let page = ErrorPage {
            status: status.as_u16(),
            title_ko,
            title_en,
            what_ko,
            what_en,
            next_ko,
            next_en,
        };
        let retry = match self {
            Self::RateLimited(secs) => Some(secs),
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
                (status, title_en).into_response()
            }
        }
    }
}
