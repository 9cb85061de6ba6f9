//! Browser routes: the item page, connect / 재인증, and Google's callback.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;

use crate::http::auth::{sign_in_needed, MaybeUser, PageUser};
use crate::http::copy::{self, BannerCopy};
use crate::http::error::PageError;
use crate::http::limits::{identified, ClientIp};
use crate::http::{found, provider, query, AppState, PagePath};
use crate::passport::disconnect::Revocation;
use crate::passport::flash::{self, Flash, Refused, Shown};
use crate::passport::flow::{self, CallbackParams};
use crate::passport::provider::Provider;
use crate::passport::status::PassportStatus;
use crate::scopes::{self, ScopeInfo};
use crate::store::gmail_token::ConnectionStatus;

fn strict_query(
    raw: Option<String>,
) -> Result<std::collections::HashMap<String, String>, PageError> {
    query::parse(raw.as_deref()).map_err(|_| PageError::BadRequest)
}

/// The cookie that binds one consent attempt to this browser.
pub(crate) fn flow_cookie(
    app: &AppState,
    provider: &str,
    name: String,
    value: String,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .secure(app.settings.secure_cookies())
        .same_site(SameSite::Lax)
        .path(format!("/passport/{provider}/callback"))
        .max_age(cookie_max_age())
        .build()
}

fn cookie_max_age() -> time::Duration {
    time::Duration::seconds(flow::STATE_TTL.num_seconds())
}

/// The name of the result flash cookie ([`flash`]).
pub(crate) const FLASH_COOKIE: &str = "passport_result";

/// The cookie carrying a signed result flash to the item page (and only
/// there: its path is the item page's).
fn flash_cookie(app: &AppState, provider: &str, value: String) -> Cookie<'static> {
    Cookie::build((FLASH_COOKIE, value))
        .http_only(true)
        .secure(app.settings.secure_cookies())
        .same_site(SameSite::Lax)
        .path(format!("/passport/{provider}"))
        .max_age(time::Duration::seconds(flash::FLASH_TTL.num_seconds()))
        .build()
}

/// `jar` with the flash of `f` set.
fn with_flash(app: &AppState, jar: CookieJar, f: &Flash) -> CookieJar {
    jar.add(flash_cookie(app, &f.provider, app.passport.seal_flash(f)))
}

/// `GET /passport/{provider}/connect?return_to=URL`: start a consent, 302 to Google.
pub async fn connect(
    State(app): State<AppState>,
    PagePath(name): PagePath<String>,
    user: Result<PageUser, PageError>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let provider = provider::<PageError>(&app, &name)?;
    let PageUser(user_id) = identified(user, || app.limiters.anonymous_ip(ip))?;
    if !navigation_allowed(&headers, &app) {
        return Err(PageError::CrossSite);
    }
    app.limiters.connect_user(user_id)?;
    let q = strict_query(raw)?;
    let return_to = q.get("return_to").map(String::as_str);
    let started = app
        .passport
        .start_consent(provider, user_id, return_to)
        .await?;
    let cookie = flow_cookie(
        &app,
        provider.name,
        started.cookie_name,
        started.browser_nonce,
    );
    let jar = CookieJar::new().add(cookie);
    Ok(found(started.authorize_url.as_str(), jar))
}

/// `GET /passport/{provider}/callback?code&state` (or `?error&state`).
pub async fn callback(
    State(app): State<AppState>,
    PagePath(name): PagePath<String>,
    MaybeUser(signed_in): MaybeUser,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let jar = CookieJar::from_headers(&headers);
    let provider = provider::<PageError>(&app, &name)?;
    // The attempt's single-use state is bound to the user and the browser:
    // a signed-in callback is limited per user, never by the traffic of its
    // address; an anonymous one cannot finish an attempt (it only reads).
    match signed_in {
        Some(user) => app.limiters.callback_user(user)?,
        None => app.limiters.anonymous_ip(ip)?,
    }
    let mut q = strict_query(raw)?;
    let params = CallbackParams {
        state: q.remove("state"),
        code: q.remove("code"),
        error: q.remove("error"),
        error_subtype: q.remove("error_subtype"),
    };
    let cookie_name = params.state.as_deref().map(flow::flow_cookie_name);
    let nonce = cookie_name
        .as_deref()
        .and_then(|n| jar.get(n))
        .map(|c| c.value().to_string());
    let done = app
        .passport
        .complete_consent(provider, params, nonce.as_deref(), signed_in)
        .await
        .map_err(|e| match PageError::from(e) {
            // Signed in again, the person starts from the inventory page:
            // the callback's address is used up and carries a code.
            PageError::SignInNeeded(_) => sign_in_needed(&app, &app.settings.inventory_url),
            other => other,
        })?;
    // The flow cookie stays until it expires with its attempt, so that a
    // replay in this browser (back, then Continue again) is known as its own.
    let changes = with_flash(&app, CookieJar::new(), &done.flash);
    Ok(found(done.redirect_to.as_str(), changes))
}

struct ScopeRow {
    granted: bool,
    label_ko: String,
    label_en: String,
    missing_ko: String,
    missing_en: String,
}

struct Banner {
    /// Tone, title, and the body before filling in.
    text: &'static BannerCopy,
    body_ko: String,
    body_en: String,
    boxes: Vec<&'static ScopeInfo>,
}

#[derive(Template, WebTemplate)]
#[template(path = "item.html")]
struct ItemPage {
    banner: Option<Banner>,
    connected: bool,
    email: Option<String>,
    /// CSS modifier of the status line.
    status_code: &'static str,
    active: bool,
    status_ko: &'static str,
    status_en: &'static str,
    scopes: Vec<ScopeRow>,
    needs_reauth: bool,
    /// Why the stored connection needs 재인증, when a stored reason says so.
    cause: Option<copy::CauseCopy>,
    /// The cause's code (a CSS hook and a test handle).
    cause_code: &'static str,
    /// What the 재인증 / 연결하기 button says: its purpose first.
    action: ActionLabel,
    reauth_href: String,
    /// The confirmation page of 연결 해제.
    disconnect_href: String,
}

/// The words of the item page's main button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActionLabel {
    pub ko: &'static str,
    pub en: &'static str,
}

/// The main button names what it does; the word 재인증 stays in it, since
/// ro-being's guides call the flow so.
pub(crate) fn action_label(st: &PassportStatus) -> ActionLabel {
    let (ko, en) = match st.status {
        None => ("연결하기", "Connect"),
        Some(ConnectionStatus::ReauthRequired | ConnectionStatus::Revoked) => {
            ("다시 연결 (재인증)", "Reconnect (re-authorize)")
        }
        Some(ConnectionStatus::Active)
            if st.missing.iter().any(|s| s.contains("/auth/calendar")) =>
        {
            (
                "캘린더 권한 추가 (재인증)",
                "Add Calendar access (re-authorize)",
            )
        }
        Some(ConnectionStatus::Active) if !st.missing.is_empty() => {
            ("권한 추가 (재인증)", "Add permissions (re-authorize)")
        }
        Some(ConnectionStatus::Active) => ("재인증", "Re-authorize"),
    };
    ActionLabel { ko, en }
}

fn scope_rows(provider: &Provider, st: &PassportStatus) -> Vec<ScopeRow> {
    let all = provider.scopes.union(&st.granted);
    let mut rows = Vec::new();
    for short in all.short_names() {
        let granted = st.granted.contains(&short);
        // Only show scopes we ask for, plus extra ones Google granted.
        let row = match scopes::KNOWN_SCOPES.iter().find(|k| k.short == short) {
            Some(k) => ScopeRow {
                granted,
                label_ko: k.label_ko.into(),
                label_en: k.label_en.into(),
                missing_ko: k.missing_ko.into(),
                missing_en: k.missing_en.into(),
            },
            None => ScopeRow {
                granted,
                label_ko: short.clone(),
                label_en: short.clone(),
                missing_ko: String::new(),
                missing_en: String::new(),
            },
        };
        rows.push(row);
    }
    rows
}

fn status_texts(st: &PassportStatus) -> (&'static str, &'static str) {
    match st.status {
        Some(ConnectionStatus::Active) if st.missing.is_empty() => ("정상", "Working"),
        Some(ConnectionStatus::Active) => ("일부 권한 없음", "Some permissions missing"),
        Some(ConnectionStatus::ReauthRequired) => (
            "재인증 필요 (Google 연결이 끊어짐)",
            "Re-authorization needed (Google connection broken)",
        ),
        Some(ConnectionStatus::Revoked) => ("해제됨", "Revoked"),
        None => ("연결되지 않음", "Not connected"),
    }
}

/// The banner after a consent or a disconnect: shown only when this
/// browser's flash (what the service recorded for this user) verifies and
/// agrees with `?passport=…&result=…`; a typed, stale or reloaded `result=`
/// shows no banner, only the current state. The sentences are [`copy`]'s,
/// with the accounts and the added or missing permissions filled in.
async fn banner(
    app: &AppState,
    provider: &Provider,
    user_id: uuid::Uuid,
    q: &std::collections::HashMap<String, String>,
    flash: Option<&Flash>,
) -> Result<Option<Banner>, PageError> {
    let Some(flash) = flash else {
        return Ok(None);
    };
    if q.get("passport").map(String::as_str) != Some(provider.name)
        || q.get("result").map(String::as_str) != Some(flash.shown.as_str())
    {
        return Ok(None);
    }
    let text = match flash.shown {
        Shown::Connected => &copy::CONNECTED,
        Shown::Upgraded if flash.added.is_empty() => &copy::UPGRADED_UNNAMED,
        Shown::Upgraded => &copy::UPGRADED,
        Shown::Unchanged => &copy::UNCHANGED,
        Shown::Partial => &copy::PARTIAL,
        Shown::Denied => &copy::DENIED,
        Shown::AccountChanged => &copy::ACCOUNT_CHANGED,
        Shown::Disconnected if flash.revoke_failed => &copy::DISCONNECTED_REVOKE_FAILED,
        Shown::Disconnected => &copy::DISCONNECTED,
        Shown::Error => match flash.refused {
            Some(Refused::AdminPolicyEnforced) => &copy::CONNECT_ADMIN_POLICY,
            Some(Refused::OrgInternal) => &copy::CONNECT_ORG_INTERNAL,
            Some(Refused::InvalidScope) => &copy::CONNECT_INVALID_SCOPE,
            None => &copy::CONNECT_ERROR,
        },
        Shown::AlreadyDone => &copy::ALREADY_DONE,
    };
    let (body_ko, body_en) = match flash.shown {
        Shown::AccountChanged => {
            let (from, to) = changed_accounts(app, provider, user_id).await?;
            (
                copy::fill_accounts(text.body_ko, &from, &to),
                copy::fill_accounts(text.body_en, &from, &to),
            )
        }
        _ => {
            let added: Vec<_> = flash.added.iter().map(scope_labels).collect();
            let ko: Vec<_> = added.iter().map(|(ko, _)| ko.as_str()).collect();
            let en: Vec<_> = added.iter().map(|(_, en)| en.as_str()).collect();
            (
                copy::fill_added(text.body_ko, &ko.join(", ")),
                copy::fill_added(text.body_en, &en.join(", ")),
            )
        }
    };
    let boxes = match text.lists_missing {
        true => flash.missing.iter().filter_map(scopes::info).collect(),
        false => Vec::new(),
    };
    Ok(Some(Banner {
        text,
        body_ko,
        body_en,
        boxes,
    }))
}

/// A permission's Korean and English labels (its short name when unknown).
fn scope_labels(full: &str) -> (String, String) {
    match scopes::info(full) {
        Some(k) => (k.label_ko.into(), k.label_en.into()),
        None => {
            let short = scopes::short_name(full).to_string();
            (short.clone(), short)
        }
    }
}

/// The accounts before and after the last account change, or words for
/// "the old one" and "the new one" when they are not known.
async fn changed_accounts(
    app: &AppState,
    provider: &Provider,
    user_id: uuid::Uuid,
) -> Result<(String, String), PageError> {
    let (from, to) = app
        .passport
        .last_account_change(provider, user_id)
        .await?
        .unwrap_or((None, None));
    Ok((
        from.unwrap_or_else(|| copy::ACCOUNT_BEFORE_UNKNOWN.into()),
        to.unwrap_or_else(|| copy::ACCOUNT_AFTER_UNKNOWN.into()),
    ))
}

/// `GET /passport/{provider}`: the inventory card. A result flash, shown
/// or not, is used up: the cookie is removed, so a reload shows no banner.
pub async fn item(
    State(app): State<AppState>,
    PagePath(name): PagePath<String>,
    user: Result<PageUser, PageError>,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let provider = provider::<PageError>(&app, &name)?;
    let PageUser(user_id) = user?;
    let q = strict_query(raw)?;
    let flash = jar
        .get(FLASH_COOKIE)
        .and_then(|c| app.passport.open_flash(c.value(), user_id, provider));
    let mut changes = CookieJar::new();
    if jar.get(FLASH_COOKIE).is_some() {
        let mut gone = flash_cookie(&app, provider.name, String::new());
        gone.make_removal();
        changes = changes.add(gone);
    }
    let st = app.passport.status(provider, user_id).await?;
    let (status_ko, status_en) = status_texts(&st);
    let mut reauth = app.passport.reauth_url(provider);
    let back = app
        .settings
        .public_url(&format!("/passport/{}", provider.name));
    reauth
        .query_pairs_mut()
        .append_pair("return_to", back.as_str());
    let page = ItemPage {
        banner: banner(&app, provider, user_id, &q, flash.as_ref()).await?,
        connected: st.connected,
        email: st.email.clone(),
        status_code: st.status.map_or("none", ConnectionStatus::as_str),
        active: st.status == Some(ConnectionStatus::Active),
        status_ko,
        status_en,
        scopes: scope_rows(provider, &st),
        needs_reauth: st.needs_reauth(),
        cause: st.cause.as_ref().map(copy::reauth_cause),
        cause_code: st.cause.as_ref().map_or("", |c| c.code()),
        action: action_label(&st),
        reauth_href: reauth.path().to_string() + "?" + reauth.query().unwrap_or_default(),
        disconnect_href: format!("/passport/{}/disconnect", provider.name),
    };
    Ok((changes, page).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "disconnect.html")]
struct DisconnectPage {
    email: Option<String>,
    action: String,
    back: String,
}

/// `GET /passport/{provider}/disconnect`: what disconnecting does, and the
/// form that does it (the second step, without JavaScript). Not connected:
/// back to the item page.
pub async fn disconnect_confirm(
    State(app): State<AppState>,
    PagePath(name): PagePath<String>,
    user: Result<PageUser, PageError>,
) -> Result<Response, PageError> {
    let provider = provider::<PageError>(&app, &name)?;
    let PageUser(user_id) = user?;
    let back = format!("/passport/{}", provider.name);
    let st = app.passport.status(provider, user_id).await?;
    if !st.connected {
        return Ok(Redirect::to(&back).into_response());
    }
    let page = DisconnectPage {
        email: st.email,
        action: format!("/passport/{}/disconnect", provider.name),
        back,
    };
    Ok(page.into_response())
}

/// May this navigation start a consent? Links from our pages, from
/// ro-being's allowed origins, or typed in; not from a foreign site.
pub(crate) fn navigation_allowed(headers: &axum::http::HeaderMap, app: &AppState) -> bool {
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"cross-site") => headers
            .get(axum::http::header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|u| app.settings.allowed_return_origins.contains(&u.origin())),
        _ => true,
    }
}

/// Did this state-changing request come from our own pages? Browsers send
/// `Sec-Fetch-Site` or `Origin` with every POST.
pub(crate) fn same_origin(headers: &axum::http::HeaderMap, app: &AppState) -> bool {
    let ours = app.settings.public_base_url.origin().ascii_serialization();
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        return origin.to_str().is_ok_and(|o| o == ours);
    }
    headers
        .get(axum::http::header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|u| u.origin().ascii_serialization() == ours)
}

/// `POST /passport/{provider}/disconnect`: revoke at Google, delete, back to the item page.
pub async fn disconnect(
    State(app): State<AppState>,
    PagePath(name): PagePath<String>,
    user: Result<PageUser, PageError>,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let provider = provider::<PageError>(&app, &name)?;
    let PageUser(user_id) = user?;
    if !same_origin(&headers, &app) {
        return Err(PageError::CrossSite);
    }
    let outcome = app.passport.disconnect(provider, user_id).await?;
    let mut to = format!(
        "/passport/{}?passport={}&result=disconnected",
        provider.name, provider.name
    );
    let revoke_failed = matches!(outcome, Some(Revocation::Failed(_)));
    if revoke_failed {
        to.push_str("&revoke=failed");
    }
    let told = Flash {
        revoke_failed,
        ..Flash::new(user_id, provider.name, Shown::Disconnected)
    };
    let jar = with_flash(&app, CookieJar::new(), &told);
    Ok((jar, Redirect::to(&to)).into_response())
}
