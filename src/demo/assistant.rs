//! The demo's "what the assistant did" panel (`/demo/calendar`): the events
//! the fake Google Calendar holds, and a button that plays skill-calendar on
//! 김지수's behalf — a token from the token API with the internal API key,
//! then the 검진 appointment created with it. Both calls go through the same
//! routers that the two ports serve (in-process, as HTTP requests), so the
//! panel shows what a real skill would get: the token, or the precise refusal
//! (`scope_missing` with its 재인증 link) before 재인증.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

use crate::fake_google::risc::Push as RiscPush;
use crate::fake_google::FakeGoogle;
use crate::http::error::{ErrorCode, PageError};
use crate::http::AppState;

/// The user the skill acts for: the demo's Gmail-only passport.
pub const SKILL_USER_EMAIL: &str = "jisoo@example.com";

/// The seed's scenario: the 검진 appointment, as skill-calendar sends it to
/// Google's `events.insert`.
pub fn checkup_event() -> Value {
    json!({
        "summary": "검진",
        "location": "인천 연수구 갯벌로156",
        "start": { "dateTime": "2025-11-24T07:40:00+09:00", "timeZone": "Asia/Seoul" },
        "end": { "dateTime": "2025-11-24T12:00:00+09:00", "timeZone": "Asia/Seoul" },
    })
}

/// The token API's request for the skill user (also printed as `curl`).
pub(crate) fn token_request_body(user: Uuid) -> Value {
    json!({ "user_id": user, "scopes": ["calendar.events"] })
}

/// The demo user the skill acts for.
pub(crate) fn skill_user() -> Uuid {
    super::demo_users()
        .into_iter()
        .find(|u| {
            u.passport
                .is_some_and(|(email, _)| email == SKILL_USER_EMAIL)
        })
        .map(|u| u.id)
        .expect("the demo seeds the skill user")
}

pub(super) fn routes(fake: FakeGoogle) -> Router<AppState> {
    Router::new()
        .route("/demo/calendar", get(panel))
        .route("/demo/calendar/play", post(play))
        .route("/demo/calendar/revoke", post(revoke))
        .layer(Extension(fake))
}

/// One event of the fake Calendar, as the panel lists it.
struct EventView {
    calendar: String,
    summary: String,
    when: String,
    location: String,
}

/// One call the skill made and how it was answered.
struct StepView {
    call: &'static str,
    answer: String,
}

/// How playing the skill went.
struct PlayView {
    ok: bool,
    title_ko: &'static str,
    title_en: &'static str,
    steps: Vec<StepView>,
    reauth_url: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "demo_calendar.html")]
struct PanelPage {
    played: Option<PlayView>,
    events: Vec<EventView>,
}

async fn panel(Extension(fake): Extension<FakeGoogle>) -> PanelPage {
    PanelPage {
        played: None,
        events: events(&fake),
    }
}

async fn play(
    State(app): State<AppState>,
    Extension(fake): Extension<FakeGoogle>,
    headers: HeaderMap,
) -> Response {
    if !crate::http::pages::same_origin(&headers, &app) {
        return PageError::CrossSite.into_response();
    }
    with_played(play_skill(&app, &fake).await, &fake)
}

/// The panel after one of its buttons: what was played, then the events.
fn with_played(played: PlayView, fake: &FakeGoogle) -> Response {
    PanelPage {
        played: Some(played),
        events: events(fake),
    }
    .into_response()
}

/// `POST /demo/calendar/revoke`: Google tells the service that 김지수 removed
/// the app's access (a RISC `tokens-revoked`, signed and pushed by the fake
/// Google to `/google/risc`), then the skill asks for a token again.
async fn revoke(
    State(app): State<AppState>,
    Extension(fake): Extension<FakeGoogle>,
    headers: HeaderMap,
) -> Response {
    if !crate::http::pages::same_origin(&headers, &app) {
        return PageError::CrossSite.into_response();
    }
    with_played(google_revokes(&app, &fake).await, &fake)
}

const RISC_CALL: &str = "POST /google/risc";

/// The signal, then the token API's answer to the skill.
async fn google_revokes(app: &AppState, fake: &FakeGoogle) -> PlayView {
    let base = app.settings.public_base_url.as_str().trim_end_matches('/');
    let push = RiscPush {
        event: "tokens-revoked".into(),
        email: Some(SKILL_USER_EMAIL.into()),
        receiver: Some(format!("{base}/google/risc")),
        ..RiscPush::default()
    };
    let issuer = app.settings.risc.config_url.origin().ascii_serialization() + "/";
    let signal = match fake.push(&push, &issuer).await {
        Ok(answer) if answer["status"] == 202 => StepView {
            call: RISC_CALL,
            answer: format!("202 — tokens-revoked for {SKILL_USER_EMAIL}, from Google ({issuer})"),
        },
        Ok(answer) => return signal_refused(format!("{} — {}", answer["status"], answer["body"])),
        Err(e) => return signal_refused(e),
    };
    let mut then = play_skill(app, fake).await;
    then.steps.insert(0, signal);
    then.title_ko = "Google이 김지수의 앱 접근 취소를 알렸습니다 (RISC). 토큰 API는 Google에 묻지 않고 바로 재인증이 필요하다고 답합니다.";
    then.title_en = "Google told the service that 김지수 removed the app's access (RISC tokens-revoked): the token API answers reauth_required at once, without asking Google.";
    then
}

fn signal_refused(answer: String) -> PlayView {
    PlayView {
        ok: false,
        title_ko: "서비스가 Google의 신호를 받지 않았습니다.",
        title_en: "The service did not take Google's signal.",
        steps: vec![StepView {
            call: RISC_CALL,
            answer,
        }],
        reauth_url: None,
    }
}

/// Every account's events in the fake Calendar, in the order created.
fn events(fake: &FakeGoogle) -> Vec<EventView> {
    let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    fake.accounts()
        .iter()
        .flat_map(|a| {
            fake.calendar_events_of(&a.email)
                .into_iter()
                .map(|e| EventView {
                    calendar: a.email.clone(),
                    summary: text(&e, "summary"),
                    when: when(&e),
                    location: text(&e, "location"),
                })
        })
        .collect()
}

/// `2025-11-24 07:40–12:00` in Korean time, from an event's start and end.
fn when(event: &Value) -> String {
    let kst = chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is an offset");
    let at = |k: &str| {
        let v = &event[k];
        v["dateTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&kst))
            .ok_or_else(|| v["date"].as_str().unwrap_or("?").to_string())
    };
    match (at("start"), at("end")) {
        (Ok(s), Ok(e)) if s.date_naive() == e.date_naive() => {
            format!("{}–{} KST", s.format("%Y-%m-%d %H:%M"), e.format("%H:%M"))
        }
        (Ok(s), Ok(e)) => format!(
            "{} – {} KST",
            s.format("%Y-%m-%d %H:%M"),
            e.format("%Y-%m-%d %H:%M")
        ),
        (s, e) => format!(
            "{} – {}",
            s.map_or_else(|d| d, |t| t.to_rfc3339()),
            e.map_or_else(|d| d, |t| t.to_rfc3339())
        ),
    }
}

/// The token API's error body.
#[derive(Deserialize)]
struct ApiRefusal {
    error: ErrorCode,
    message: String,
    reauth_url: Option<String>,
    #[serde(default)]
    missing: Vec<String>,
}

const TOKEN_CALL: &str = "POST /internal/passport/gmail/token";
const INSERT_CALL: &str = "POST /calendar/v3/calendars/primary/events";

/// Play skill-calendar: the token, then the event.
async fn play_skill(app: &AppState, fake: &FakeGoogle) -> PlayView {
    let key = app
        .settings
        .internal_api_keys
        .first()
        .map(|k| k.expose_secret().to_string())
        .unwrap_or_default();
    let service = crate::http::routes(app).with_state(app.clone());
    let (status, body) = call(
        service,
        TOKEN_CALL,
        &key,
        Some(token_request_body(skill_user())),
    )
    .await;
    if status != StatusCode::OK {
        return refused_by_token_api(status, body);
    }
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut steps = vec![StepView {
        call: TOKEN_CALL,
        answer: format!(
            "{} — access_token for {}",
            status.as_u16(),
            body["email"].as_str().unwrap_or("?")
        ),
    }];
    let (status, body) = call(fake.router(), INSERT_CALL, &access, Some(checkup_event())).await;
    let ok = status == StatusCode::OK;
    steps.push(StepView {
        call: INSERT_CALL,
        answer: if ok {
            format!(
                "{} — id {}",
                status.as_u16(),
                body["id"].as_str().unwrap_or("?")
            )
        } else {
            format!(
                "{} — {}",
                status.as_u16(),
                body["error"]["errors"][0]["reason"].as_str().unwrap_or("?")
            )
        },
    });
    PlayView {
        ok,
        title_ko: if ok {
            "검진 일정을 등록했습니다."
        } else {
            "캘린더가 일정 등록을 거절했습니다."
        },
        title_en: if ok {
            "The 검진 appointment was created."
        } else {
            "The Calendar refused the event."
        },
        steps,
        reauth_url: None,
    }
}

fn refused_by_token_api(status: StatusCode, body: Value) -> PlayView {
    let refusal: Option<ApiRefusal> = serde_json::from_value(body).ok();
    let answer = match &refusal {
        Some(r) if r.missing.is_empty() => format!("{} — {}", status.as_u16(), r.error.as_str()),
        Some(r) => format!(
            "{} — {} (missing: {})",
            status.as_u16(),
            r.error.as_str(),
            r.missing.join(", ")
        ),
        None => status.as_u16().to_string(),
    };
    let scope_missing = refusal
        .as_ref()
        .is_some_and(|r| r.error == ErrorCode::ScopeMissing);
    PlayView {
        ok: false,
        title_ko: if scope_missing {
            "캘린더 권한이 없어 토큰 API가 거절했습니다 (scope_missing). 재인증으로 권한을 추가하세요."
        } else {
            "토큰 API가 거절했습니다."
        },
        title_en: if scope_missing {
            "The token API refused: the grant lacks Calendar (scope_missing). Add it with 재인증."
        } else {
            "The token API refused."
        },
        steps: vec![StepView {
            call: TOKEN_CALL,
            answer: match &refusal {
                Some(r) => format!("{answer}: {}", r.message),
                None => answer,
            },
        }],
        reauth_url: refusal.and_then(|r| r.reauth_url),
    }
}

/// One HTTP request through `router` (as from the local machine), with a
/// bearer token and a JSON body; the status and the JSON answer.
async fn call(
    router: Router,
    endpoint: &str,
    bearer: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (method, path) = endpoint.split_once(' ').expect("METHOD /path");
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("a method"))
        .uri(path)
        .header(AUTHORIZATION, format!("Bearer {bearer}"))
        .header(CONTENT_TYPE, "application/json")
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))))
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("a valid request");
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
