//! The sentences of the error pages and of the item page's banners, Korean
//! first with English beside it: one named `const` per page and per banner,
//! so that changing a sentence is an edit in this file only.
//!
//! The fixed parts of the pages (headings, buttons, hints) are in
//! `templates/`; the permission labels are in [`crate::scopes`].

use crate::store::gmail_token::ReauthCause;
use crate::store::risc_event::SignalKind;

/// What an error page says: its title, what happened, and what to do.
#[derive(Debug)]
pub struct PageCopy {
    pub title_ko: &'static str,
    pub title_en: &'static str,
    pub what_ko: &'static str,
    pub what_en: &'static str,
    pub next_ko: &'static str,
    pub next_en: &'static str,
}

pub const SIGN_IN_NEEDED: PageCopy = PageCopy {
    title_ko: "로그인이 필요합니다",
    title_en: "Sign-in needed",
    what_ko: "ro-being에 로그인되어 있지 않거나 로그인이 만료되었습니다.",
    what_en: "You are not signed in to ro-being, or your session has expired.",
    next_ko: "로그인 버튼을 눌러 ro-being에 로그인해 주세요. 로그인하면 이 페이지로 돌아옵니다.",
    next_en: "Press Sign in to sign in to ro-being; you will come back to this page.",
};

/// [`SIGN_IN_NEEDED`] when `LOGIN_URL` is not set: no button, the way in words.
pub const SIGN_IN_NEEDED_NO_LINK: PageCopy = PageCopy {
    next_ko: "ro-being 앱이나 웹사이트에서 로그인한 뒤, 설정 > 아이템 > Gmail을 다시 열어 주세요.",
    next_en: "Sign in to ro-being in its app or website, then open Settings > Items > Gmail again.",
    ..SIGN_IN_NEEDED
};

pub const NOT_FOUND: PageCopy = PageCopy {
    title_ko: "페이지를 찾을 수 없습니다",
    title_en: "Page not found",
    what_ko: "요청한 주소에 해당하는 페이지나 패스포트가 없습니다.",
    what_en: "There is no page or passport at this address.",
    next_ko: "설정 > 아이템에서 Gmail 패스포트를 열어 주세요.",
    next_en: "Open the Gmail Passport from Settings > Items.",
};

pub const BAD_REQUEST: PageCopy = PageCopy {
    title_ko: "잘못된 요청입니다",
    title_en: "Bad request",
    what_ko: "요청 주소의 매개변수가 중복되었거나 너무 깁니다.",
    what_en: "The request's parameters are duplicated or too long.",
    next_ko: "설정 > 아이템 > Gmail에서 버튼을 눌러 다시 시작해 주세요.",
    next_en: "Start again with the button in Settings > Items > Gmail.",
};

pub const RETURN_TO_REFUSED: PageCopy = PageCopy {
    title_ko: "허용되지 않은 돌아갈 주소입니다",
    title_en: "Return address not allowed",
    what_ko: "인증이 끝난 뒤 돌아갈 주소(return_to)가 ro-being의 주소가 아니어서 진행하지 않았습니다. 아무것도 바뀌지 않았습니다.",
    what_en: "The address to return to after consent (return_to) is not a ro-being address, so nothing was started. Nothing changed.",
    next_ko: "ro-being의 설정 > 아이템 > Gmail에서 재인증 버튼을 눌러 주세요.",
    next_en: "Press the 재인증 (re-authorize) button in ro-being's Settings > Items > Gmail.",
};

pub const STATE_UNKNOWN: PageCopy = PageCopy {
    title_ko: "이미 처리되었거나 알 수 없는 인증 요청입니다",
    title_en: "This consent was already handled or is unknown",
    what_ko: "이 주소는 이미 한 번 사용되었거나(뒤로 가기, 새로 고침) 이 서비스가 만든 요청이 아닙니다. 연결은 바뀌지 않았습니다.",
    what_en: "This address was already used (back button or reload) or was not issued by this service. Your connection did not change.",
    next_ko: "Gmail 패스포트 페이지에서 현재 상태를 확인하고, 필요하면 재인증을 다시 눌러 주세요.",
    next_en: "Check the current state on the Gmail Passport page and press 재인증 again if needed.",
};

pub const STATE_EXPIRED: PageCopy = PageCopy {
    title_ko: "인증 시간이 지났습니다",
    title_en: "The consent took too long",
    what_ko: "Google 동의 화면에서 10분 넘게 머물러 요청이 만료되었습니다. 연결은 바뀌지 않았습니다.",
    what_en: "More than 10 minutes passed on Google's consent screen, so the request expired. Your connection did not change.",
    next_ko: "재인증 버튼을 다시 누르고 10분 안에 동의를 마쳐 주세요.",
    next_en: "Press 재인증 again and finish the consent within 10 minutes.",
};

pub const ATTEMPT_INTERRUPTED: PageCopy = PageCopy {
    title_ko: "이전 인증 처리가 중단되었습니다",
    title_en: "The earlier consent was interrupted",
    what_ko: "Google 동의는 받았지만, 저장을 마치기 전에 처리가 중단되었습니다(서버 재시작 등). 연결은 바뀌지 않았고, 이 주소는 다시 쓸 수 없습니다.",
    what_en: "Google's consent came back, but handling it stopped before it was saved (a server restart, for example). Your connection did not change, and this address cannot be used again.",
    next_ko: "Gmail 패스포트 페이지에서 재인증을 다시 눌러 처음부터 진행해 주세요.",
    next_en: "Press 재인증 again on the Gmail Passport page to start over.",
};

pub const BROWSER_MISMATCH: PageCopy = PageCopy {
    title_ko: "다른 브라우저에서 시작된 인증입니다",
    title_en: "This consent was started in another browser",
    what_ko: "인증을 시작한 브라우저와 지금 브라우저가 다르거나, 쿠키가 지워졌습니다. 안전을 위해 진행하지 않았습니다. 연결은 바뀌지 않았습니다.",
    what_en: "The consent was started in a different browser, or its cookie was cleared. For your safety nothing was done. Your connection did not change.",
    next_ko: "이 브라우저에서 Gmail 패스포트 페이지를 열고 재인증을 다시 눌러 주세요.",
    next_en: "Open the Gmail Passport page in this browser and press 재인증 again.",
};

pub const USER_MISMATCH: PageCopy = PageCopy {
    title_ko: "다른 사용자의 인증 요청입니다",
    title_en: "This consent belongs to another user",
    what_ko: "이 인증은 지금 로그인한 ro-being 계정이 시작한 것이 아닙니다. 연결은 바뀌지 않았습니다.",
    what_en: "This consent was not started by the ro-being account that is signed in now. No connection changed.",
    next_ko: "본인 계정으로 로그인한 뒤 재인증을 다시 눌러 주세요.",
    next_en: "Sign in with your own account and press 재인증 again.",
};

pub const CROSS_SITE: PageCopy = PageCopy {
    title_ko: "다른 사이트에서 온 요청입니다",
    title_en: "Request from another site",
    what_ko: "이 요청은 Gmail 패스포트 페이지에서 보낸 것이 아니어서 처리하지 않았습니다. 아무것도 바뀌지 않았습니다.",
    what_en: "This request was not sent from the Gmail Passport page, so it was not carried out. Nothing changed.",
    next_ko: "Gmail 패스포트 페이지를 열고 버튼을 직접 눌러 주세요.",
    next_en: "Open the Gmail Passport page and press the button there.",
};

pub const RATE_LIMITED: PageCopy = PageCopy {
    title_ko: "요청이 너무 많습니다",
    title_en: "Too many requests",
    what_ko: "짧은 시간에 요청이 너무 많이 와서 잠시 멈췄습니다. 아무것도 바뀌지 않았습니다.",
    what_en: "Too many requests arrived in a short time, so this one was paused. Nothing changed.",
    next_ko: "1분쯤 기다린 뒤 다시 시도해 주세요.",
    next_en: "Wait about a minute, then try again.",
};

pub const DATABASE_UNAVAILABLE: PageCopy = PageCopy {
    title_ko: "잠시 이용할 수 없습니다",
    title_en: "Temporarily unavailable",
    what_ko: "저장소(데이터베이스)가 지금 응답하지 않아 요청을 처리하지 못했습니다.",
    what_en:
        "Our storage (database) is not answering right now, so the request could not be handled.",
    next_ko: "잠시 후 다시 시도해 주세요.",
    next_en: "Try again in a moment.",
};

pub const UPSTREAM_UNAVAILABLE: PageCopy = PageCopy {
    title_ko: "잠시 이용할 수 없습니다",
    title_en: "Temporarily unavailable",
    what_ko: "Google에 연결 상태를 확인해야 하는데 Google이 지금 응답하지 않습니다.",
    what_en: "The connection has to be checked with Google, and Google is not answering right now.",
    next_ko: "잠시 후 다시 시도해 주세요.",
    next_en: "Try again in a moment.",
};

pub const INTERNAL: PageCopy = PageCopy {
    title_ko: "일시적인 오류가 발생했습니다",
    title_en: "Something went wrong on our side",
    what_ko: "요청을 처리하는 중에 서버 오류가 발생했습니다.",
    what_en: "The server failed while handling the request.",
    next_ko: "잠시 후 다시 시도해 주세요. 계속되면 ro-being 고객센터에 알려 주세요.",
    next_en: "Try again in a moment. If it keeps happening, contact ro-being support.",
};

/// What the item page's banner says after a consent or a disconnect
/// (`?passport=…&result=…`).
#[derive(Debug)]
pub struct BannerCopy {
    /// CSS modifier: `ok`, `warn` or `bad`.
    pub tone: &'static str,
    pub title_ko: &'static str,
    pub title_en: &'static str,
    /// May hold `{from}` and `{to}`, the two Google accounts (see
    /// [`fill_accounts`]).
    pub body_ko: &'static str,
    pub body_en: &'static str,
    /// Follow the body with a box per missing permission (`&missing=…`).
    pub lists_missing: bool,
}

pub const CONNECTED: BannerCopy = BannerCopy {
    tone: "ok",
    title_ko: "연결되었습니다",
    title_en: "Connected",
    body_ko: "Google 계정이 연결되었습니다. 이제 로빙이 아래 권한으로 도와드릴 수 있습니다.",
    body_en:
        "Your Google account is connected. The assistant can now help with the permissions below.",
    lists_missing: false,
};

/// `{added}`: the labels of the permissions the stored grant gained (see
/// [`fill_added`]).
pub const UPGRADED: BannerCopy = BannerCopy {
    tone: "ok",
    title_ko: "권한이 추가되었습니다",
    title_en: "Permissions added",
    body_ko: "{added} 권한이 추가되었습니다. 전에 허용한 권한도 그대로입니다.",
    body_en: "Added: {added}. What you granted before is kept.",
    lists_missing: false,
};

/// [`UPGRADED`] when the added permissions cannot be named.
pub const UPGRADED_UNNAMED: BannerCopy = BannerCopy {
    body_ko: "새 권한이 저장되었습니다. 전에 허용한 권한도 그대로입니다.",
    body_en: "The new permissions are saved. What you granted before is kept.",
    ..UPGRADED
};

/// A second consent that granted what the connection already had.
pub const UNCHANGED: BannerCopy = BannerCopy {
    tone: "ok",
    title_ko: "바뀐 것이 없습니다",
    title_en: "Nothing changed",
    body_ko: "이미 모든 권한이 허용되어 있어서 연결은 그대로입니다.",
    body_en: "Every permission was already granted, so the connection stays as it was.",
    lists_missing: false,
};

/// A finished consent sent again (back, then Continue): nothing applied.
pub const ALREADY_DONE: BannerCopy = BannerCopy {
    tone: "ok",
    title_ko: "이미 처리되었습니다",
    title_en: "Already done",
    body_ko: "같은 동의가 한 번 더 전달되었지만, 두 번 적용하지 않았습니다. 아래가 지금 연결 상태입니다.",
    body_en: "The same consent arrived a second time (after going back); it was not applied twice. Below is the connection as it is now.",
    lists_missing: false,
};

pub const PARTIAL: BannerCopy = BannerCopy {
    tone: "warn",
    title_ko: "일부 권한만 허용되었습니다",
    title_en: "Only some permissions were granted",
    body_ko: "허용한 권한은 저장되었고, 이전 권한도 그대로입니다. 빠진 권한이 있어 일부 기능을 쓸 수 없습니다.",
    body_en: "What you granted is saved, and nothing you granted before was lost. Some features need the missing permissions.",
    lists_missing: true,
};

pub const DENIED: BannerCopy = BannerCopy {
    tone: "warn",
    title_ko: "취소했습니다",
    title_en: "Cancelled",
    body_ko: "Google 화면에서 취소하여 아무것도 바뀌지 않았습니다.",
    body_en: "You cancelled on Google's screen, so nothing changed.",
    lists_missing: false,
};

pub const ACCOUNT_CHANGED: BannerCopy = BannerCopy {
    tone: "warn",
    title_ko: "다른 Google 계정으로 바뀌었습니다",
    title_en: "The Google account changed",
    body_ko: "연결된 Google 계정이 바뀌었습니다. 이전 계정: {from}, 지금 계정: {to}. 의도한 것이 아니라면 재인증을 눌러 원래 계정을 고르세요.",
    body_en: "The connected account changed from {from} to {to}. If you did not mean to, press Re-authorize and pick the original account.",
    lists_missing: true,
};

/// `{from}` in [`ACCOUNT_CHANGED`] when the old address is not known (in
/// both languages).
pub const ACCOUNT_BEFORE_UNKNOWN: &str = "알 수 없음";
/// `{to}` in [`ACCOUNT_CHANGED`] when the new address is not known (in both
/// languages).
pub const ACCOUNT_AFTER_UNKNOWN: &str = "알 수 없음";

pub const DISCONNECTED: BannerCopy = BannerCopy {
    tone: "ok",
    title_ko: "연결을 해제했습니다",
    title_en: "Disconnected",
    body_ko: "Google 권한을 취소하고 연결 정보를 삭제했습니다.",
    body_en: "Google access is revoked and the connection is deleted.",
    lists_missing: false,
};

/// [`DISCONNECTED`] when Google could not be told (`&revoke=failed`).
pub const DISCONNECTED_REVOKE_FAILED: BannerCopy = BannerCopy {
    body_ko: "연결 정보는 삭제했지만 Google에 권한 취소를 알리지 못했습니다. Google 계정 > 보안 > 타사 앱에서 직접 삭제할 수 있습니다.",
    body_en: "The connection is deleted, but Google could not be told to revoke access. You can remove it in your Google Account > Security > Third-party apps.",
    ..DISCONNECTED
};

pub const CONNECT_ERROR: BannerCopy = BannerCopy {
    tone: "bad",
    title_ko: "연결하지 못했습니다",
    title_en: "Could not connect",
    body_ko: "Google과 통신하는 중에 문제가 생겨 아무것도 바뀌지 않았습니다. 잠시 후 재인증을 다시 눌러 주세요.",
    body_en: "Something went wrong talking to Google, so nothing changed. Press Re-authorize again in a moment.",
    lists_missing: false,
};

/// Google redirected back with `admin_policy_enforced` (as `error`, or as
/// `error_subtype` of `access_denied`).
pub const CONNECT_ADMIN_POLICY: BannerCopy = BannerCopy {
    tone: "bad",
    title_ko: "관리자가 이 앱을 막았습니다",
    title_en: "Blocked by your admin",
    body_ko: "회사·학교 Google Workspace 관리자가 이 앱(또는 Gmail·캘린더 권한)을 허용하지 않아 연결하지 못했습니다. 아무것도 바뀌지 않았습니다. 관리자에게 이 앱을 허용해 달라고 요청한 뒤 재인증을 눌러 주세요.",
    body_en: "Your Google Workspace admin does not allow this app (or its Gmail and Calendar permissions), so nothing was connected. Ask your admin to allow the app, then press Re-authorize.",
    lists_missing: false,
};

/// Google redirected back with `org_internal`.
pub const CONNECT_ORG_INTERNAL: BannerCopy = BannerCopy {
    tone: "bad",
    title_ko: "이 계정으로는 쓸 수 없습니다",
    title_en: "Not available for this account",
    body_ko: "이 앱은 특정 조직의 Google 계정만 쓸 수 있어 연결하지 못했습니다. 아무것도 바뀌지 않았습니다. 재인증을 누르고 그 조직의 계정을 골라 주세요.",
    body_en: "This app can only be used with accounts of its organisation, so nothing was connected. Press Re-authorize and pick an account of that organisation.",
    lists_missing: false,
};

/// Google redirected back with `invalid_scope`: ours to fix.
pub const CONNECT_INVALID_SCOPE: BannerCopy = BannerCopy {
    tone: "bad",
    title_ko: "서비스 설정 문제로 연결하지 못했습니다",
    title_en: "Could not connect: a setting of ours",
    body_ko: "Google이 이 서비스가 요청한 권한 이름을 받아들이지 않았습니다. 사용자의 문제가 아니며 아무것도 바뀌지 않았습니다. ro-being 고객센터에 알려 주세요.",
    body_en: "Google did not accept a permission this service asked for. This is not your fault, and nothing changed. Please tell ro-being support.",
    lists_missing: false,
};

/// Why a stored connection needs 재인증, on the item page, by its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseCopy {
    pub ko: &'static str,
    pub en: &'static str,
}

/// The item page's words for a connection's [`ReauthCause`]: what happened
/// and what helps. A cause without words of its own gets the general ones.
pub fn reauth_cause(cause: &ReauthCause) -> CauseCopy {
    let (ko, en) = match cause {
        ReauthCause::InvalidGrant { .. } => (
            "Google이 연결을 끊었습니다. Google 계정에서 접근 권한이 삭제되었거나, 비밀번호가 바뀌었거나, 오래 쓰지 않아 만료되었습니다. 재인증을 눌러 다시 연결해 주세요.",
            "Google ended the connection: access was removed in your Google Account, the password changed, or it expired. Press Re-authorize to connect again.",
        ),
        ReauthCause::InvalidRapt { .. } => (
            "회사·학교 Google Workspace 정책에 따라 다시 로그인해야 합니다. 재인증을 눌러 다시 로그인해 주세요.",
            "Your organisation's Google Workspace policy asks you to sign in again. Press Re-authorize to sign in.",
        ),
        ReauthCause::AdminPolicyEnforced { .. } => (
            "회사·학교 Google Workspace 관리자가 이 앱(또는 Gmail·캘린더 권한)을 막았습니다. 관리자에게 이 앱을 허용해 달라고 요청해 주세요. 허용되기 전에는 재인증을 눌러도 해결되지 않습니다.",
            "Your Google Workspace admin blocks this app (or its Gmail and Calendar permissions). Ask your admin to allow it; pressing Re-authorize will not help until they do.",
        ),
        ReauthCause::OrgInternal { .. } => (
            "이 앱은 특정 조직의 Google 계정만 쓸 수 있습니다. 재인증을 누르고 그 조직의 계정을 골라 주세요.",
            "This app can only be used with accounts of its organisation. Press Re-authorize and pick an account of it.",
        ),
        ReauthCause::AccessDenied { .. } => (
            "Google이 이 연결의 접근을 거부했습니다. 재인증을 눌러 다시 허용해 주세요.",
            "Google denied access for this connection. Press Re-authorize to allow it again.",
        ),
        ReauthCause::NoRefreshToken => (
            "저장된 연결 정보가 완전하지 않습니다. 재인증을 눌러 다시 연결해 주세요.",
            "The stored connection is incomplete. Press Re-authorize to connect again.",
        ),
        ReauthCause::Signal(s) => signal_words(s.kind),
        _ => (
            "Google 연결을 다시 확인해야 합니다. 재인증을 눌러 주세요.",
            "The Google connection has to be confirmed again. Press Re-authorize.",
        ),
    };
    CauseCopy { ko, en }
}

/// The item page's words for a connection Google's revocation signal
/// (RISC) marked: what Google said, and what the user does first.
fn signal_words(kind: SignalKind) -> (&'static str, &'static str) {
    match kind {
        SignalKind::TokensRevoked => (
            "Google 계정에서 이 서비스의 접근 권한이 해제되었습니다. 재인증을 눌러 다시 연결해 주세요.",
            "Access for this service was removed in your Google Account. Press Re-authorize to connect again.",
        ),
        SignalKind::TokenRevoked => (
            "Google이 이 연결의 토큰을 취소했습니다. 재인증을 눌러 다시 연결해 주세요.",
            "Google revoked this connection's token. Press Re-authorize to connect again.",
        ),
        SignalKind::SessionsRevoked => (
            "Google 계정의 모든 세션이 종료되었습니다(예: 비밀번호 변경). 재인증을 눌러 다시 연결해 주세요.",
            "Every session of your Google account was ended (for example, after a password change). Press Re-authorize to connect again.",
        ),
        SignalKind::AccountDisabled => (
            "Google 계정이 사용 중지되었습니다. 먼저 Google에서 계정을 복구해야 합니다(Google 계정에 로그인하면 복구 안내가 나옵니다). 복구되기 전에는 재인증을 눌러도 해결되지 않습니다.",
            "Your Google account was disabled. Restore it with Google first (signing in to your Google account shows how); pressing Re-authorize will not help until it is restored.",
        ),
        SignalKind::CredentialChangeRequired => (
            "Google이 이 계정의 비밀번호 변경을 요구합니다. 먼저 Google 계정의 비밀번호를 바꾼 뒤 재인증을 눌러 다시 연결해 주세요.",
            "Google asks you to change your Google account's password. Change it first, then press Re-authorize to connect again.",
        ),
    }
}

/// `body` with `{added}` replaced by `added` (labels of [`crate::scopes`]).
pub fn fill_added(body: &str, added: &str) -> String {
    body.replace("{added}", added)
}

/// `body` with `{from}` and `{to}` replaced in one pass, so that an address
/// which itself contains `{to}` is shown as it is.
pub fn fill_accounts(body: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(body.len() + from.len() + to.len());
    let mut rest = body;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{from}") {
            out.push_str(from);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{to}") {
            out.push_str(to);
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_both_accounts_once() {
        assert_eq!(
            fill_accounts(ACCOUNT_CHANGED.body_en, "a@x.com", "b@x.com"),
            "The connected account changed from a@x.com to b@x.com. If you did not mean to, press Re-authorize and pick the original account."
        );
        assert_eq!(
            fill_accounts("{from}→{to} {x}", "{to}@x.com", "{from}"),
            "{to}@x.com→{from} {x}"
        );
    }

    #[test]
    fn upgraded_names_what_was_added() {
        assert_eq!(
            fill_added(UPGRADED.body_ko, "캘린더 보기·관리, 캘린더 일정 보기·편집"),
            "캘린더 보기·관리, 캘린더 일정 보기·편집 권한이 추가되었습니다. 전에 허용한 권한도 그대로입니다."
        );
    }

    #[test]
    fn only_account_changed_and_upgraded_have_blanks() {
        for b in [
            CONNECTED,
            UPGRADED_UNNAMED,
            UNCHANGED,
            ALREADY_DONE,
            PARTIAL,
            DENIED,
            DISCONNECTED,
            DISCONNECTED_REVOKE_FAILED,
            CONNECT_ERROR,
            CONNECT_ADMIN_POLICY,
            CONNECT_ORG_INTERNAL,
            CONNECT_INVALID_SCOPE,
        ] {
            assert!(
                !b.body_ko.contains('{') && !b.body_en.contains('{'),
                "{b:?}"
            );
        }
    }
}
