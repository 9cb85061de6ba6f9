//! `auth-server demo`: the service, a fake Google and a demo sign-in page in
//! one process, so that a newcomer can click through the 재인증 journey.
//! Never part of `serve`.

mod assistant;
mod start;

pub use assistant::{checkup_event, SKILL_USER_EMAIL};
pub use start::{BindSource, DEFAULT_BIND};

use std::collections::BTreeMap;
use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use jsonwebtoken::{encode, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::Settings;
use crate::crypto::Field;
use crate::fake_google::{FakeConfig, FakeGoogle};
use crate::http::error::PageError;
use crate::http::AppState;
use crate::passport::{random_token, Passport};
use crate::startup::{connect_with_retry, shutdown_signal, Application};
use crate::store::{self, gmail_token};
use crate::telemetry;

pub const DEMO_CLIENT_ID: &str = "demo-client.apps.googleusercontent.com";
pub const DEMO_CLIENT_SECRET: &str = "demo-client-secret";
pub(crate) const DEMO_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/auth_server_demo";

/// A demo user: a ro-being user id and how the demo starts it.
pub struct DemoUser {
    pub id: Uuid,
    pub label_ko: &'static str,
    pub label_en: &'static str,
    /// Google account and scopes of the passport the demo seeds, if any.
    pub passport: Option<(&'static str, &'static [&'static str])>,
}

/// Gmail-only scopes: what every passport had before Calendar was added.
pub(crate) const GMAIL_ONLY: &[&str] = &[
    "gmail.send",
    "gmail.readonly",
    "gmail.modify",
    "userinfo.email",
    "userinfo.profile",
];

pub fn demo_users() -> Vec<DemoUser> {
    vec![
        DemoUser {
            id: Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001),
            label_ko: "김지수 — Gmail만 연결됨 (캘린더 없음)",
            label_en: "Jisoo — Gmail only (no Calendar)",
            passport: Some(("jisoo@example.com", GMAIL_ONLY)),
        },
        DemoUser {
            id: Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0002),
            label_ko: "이민호 — 아직 연결 안 됨",
            label_en: "Minho — not connected yet",
            passport: None,
        },
    ]
}

#[derive(Serialize)]
struct SessionClaims {
    sub: String,
    exp: i64,
    iat: i64,
}

/// Sign a ro-being style session JWT (HS256) for a user.
pub fn session_jwt(secret: &[u8], user_id: Uuid, ttl: chrono::Duration) -> String {
    let now = chrono::Utc::now();
    encode(
        &Header::default(),
        &SessionClaims {
            sub: user_id.to_string(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        },
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing cannot fail")
}

struct UserChoice {
    id: String,
    label_ko: &'static str,
    label_en: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "demo_signin.html")]
struct SignInPage {
    users: Vec<UserChoice>,
    /// The page to come back to after signing in (`LOGIN_RETURN_PARAM`).
    return_to: Option<String>,
}

/// The demo's sign-in page plays ro-being's (`LOGIN_URL`): it takes the
/// page to come back to in `LOGIN_RETURN_PARAM`.
async fn sign_in_page(
    State(app): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> SignInPage {
    SignInPage {
        return_to: q.get(&app.settings.login.return_param).cloned(),
        users: demo_users()
            .into_iter()
            .map(|u| UserChoice {
                id: u.id.to_string(),
                label_ko: u.label_ko,
                label_en: u.label_en,
            })
            .collect(),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    user_id: Uuid,
    /// Where to go once signed in; only a page of this service is followed.
    #[serde(default)]
    return_to: Option<String>,
}

/// `return_to` when it is a page of this service, else the item page.
fn after_sign_in(app: &AppState, return_to: Option<&str>) -> String {
    let ours = app.settings.public_base_url.origin();
    return_to
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|u| u.origin() == ours)
        .map_or_else(|| "/passport/gmail".to_string(), String::from)
}

async fn sign_in(State(app): State<AppState>, Form(form): Form<SignInForm>) -> Response {
    if !demo_users().iter().any(|u| u.id == form.user_id) {
        return (StatusCode::BAD_REQUEST, "unknown demo user").into_response();
    }
    let jwt = session_jwt(
        app.settings.session_jwt_secret.expose_secret().as_bytes(),
        form.user_id,
        chrono::Duration::hours(12),
    );
    let cookie = Cookie::build((app.settings.session_cookie_name.clone(), jwt))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(app.settings.secure_cookies())
        .path("/")
        .build();
    let to = after_sign_in(&app, form.return_to.as_deref());
    (CookieJar::new().add(cookie), Redirect::to(&to)).into_response()
}

async fn home() -> Redirect {
    Redirect::to("/demo")
}

/// The demo's own routes: the sign-in page and the reset button.
fn demo_routes(fake: FakeGoogle) -> Router<AppState> {
    let assistant = assistant::routes(fake.clone());
    let reset = move |State(app): State<AppState>, headers: axum::http::HeaderMap| {
        let fake = fake.clone();
        async move {
            if !crate::http::pages::same_origin(&headers, &app) {
                return PageError::CrossSite.into_response();
            }
            fake.reset();
            match seed(&app.passport, &fake).await {
                Ok(()) => Redirect::to("/demo").into_response(),
                Err(e) => PageError::internal(&e).into_response(),
            }
        }
    };
    Router::new()
        .route("/", get(home))
        .route("/demo", get(sign_in_page))
        .route("/demo/sign-in", post(sign_in))
        .route("/demo/reset", post(reset))
        .merge(assistant)
}

/// The service as `serve` runs it (same startup, same background tasks),
/// plus the demo's pages.
pub fn application(
    settings: Settings,
    pool: PgPool,
    listener: TcpListener,
    fake: FakeGoogle,
) -> Application {
    Application::with_parts(settings, pool, listener).merge_routes(demo_routes(fake))
}

/// Settings for the demo: everything local, the Google endpoints at the fake.
pub fn demo_settings(
    bind: SocketAddr,
    fake_base: &str,
    database_url: &str,
) -> Result<Settings, crate::config::ConfigError> {
    let host = if bind.ip().is_unspecified() {
        format!("127.0.0.1:{}", bind.port())
    } else {
        bind.to_string()
    };
    let mut m = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    set("DATABASE_URL", database_url.to_string());
    set("BIND_ADDR", bind.to_string());
    set("PUBLIC_BASE_URL", format!("http://{host}"));
    // The demo's sign-in page stands in for ro-being's.
    set("LOGIN_URL", format!("http://{host}/demo"));
    set("GOOGLE_CLIENT_ID", DEMO_CLIENT_ID.into());
    set("GOOGLE_CLIENT_SECRET", DEMO_CLIENT_SECRET.into());
    set("GOOGLE_AUTH_URL", format!("{fake_base}/o/oauth2/v2/auth"));
    set("GOOGLE_TOKEN_URL", format!("{fake_base}/token"));
    set("GOOGLE_USERINFO_URL", format!("{fake_base}/v1/userinfo"));
    set("GOOGLE_REVOKE_URL", format!("{fake_base}/revoke"));
    set("GOOGLE_TOKENINFO_URL", format!("{fake_base}/tokeninfo"));
    set("GOOGLE_API_BASE_URL", fake_base.to_string());
    // The fake's RISC issuer: its pushes verify against its own keys.
    set(
        "GOOGLE_RISC_CONFIG_URL",
        format!("{fake_base}/.well-known/risc-configuration"),
    );
    set("GOOGLE_RISC_API_URL", fake_base.to_string());
    // Scripts driving the demo (the browser tests) may fix these.
    set(
        "SESSION_JWT_SECRET",
        std::env::var("SESSION_JWT_SECRET").unwrap_or_else(|_| random_token()),
    );
    set(
        "INTERNAL_API_KEYS",
        std::env::var("INTERNAL_API_KEYS").unwrap_or_else(|_| random_token()),
    );
    set(
        "TOKEN_ENCRYPTION_KEYS",
        std::env::var("TOKEN_ENCRYPTION_KEYS").unwrap_or_else(|_| {
            use base64::Engine;
            let key: [u8; 32] = rand::random();
            format!(
                "demo:{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            )
        }),
    );
    if let Ok(scopes) = std::env::var("GMAIL_PASSPORT_SCOPES") {
        set("GMAIL_PASSPORT_SCOPES", scopes);
    }
    Settings::from_pairs(m.iter().map(|(k, v)| (k.as_str(), v.clone())))
}

/// Reset the demo users' passports to their starting state, at the fake and
/// in the database.
pub async fn seed(passport: &Passport, fake: &FakeGoogle) -> anyhow::Result<()> {
    let (db, cipher) = (&passport.db, &passport.cipher);
    for user in demo_users() {
        gmail_token::delete(db, user.id).await?;
        let Some((email, scopes)) = user.passport else {
            continue;
        };
        let account = fake
            .account(email)
            .ok_or_else(|| anyhow::anyhow!("fake Google has no account {email}"))?
            .clone();
        let (access, refresh) = fake
            .seed_grant(email, scopes)
            .ok_or_else(|| anyhow::anyhow!("fake Google has no account {email}"))?;
        let granted = crate::scopes::ScopeSet::parse_known(scopes.iter().copied())?;
        let refresh = secrecy::SecretString::from(refresh);
        let mac = passport.scopes_mac(user.id, Some(&account.sub), Some(&refresh), &granted);
        let refresh = secrecy::ExposeSecret::expose_secret(&refresh);
        gmail_token::upsert_consent(
            db,
            &gmail_token::ConsentWrite {
                user_id: user.id,
                email: Some(email),
                google_sub: &account.sub,
                access_token: &cipher.seal(user.id, Field::AccessToken, &access),
                refresh_token: Some(&cipher.seal(user.id, Field::RefreshToken, refresh)),
                token_type: "Bearer",
                expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(3599)),
                scopes: granted.to_json(),
                scopes_mac: mac.as_deref(),
                last_error: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// Run the demo until Ctrl-C. `bind`: the `--bind` flag, which wins over
/// `BIND_ADDR`, which wins over [`DEFAULT_BIND`].
pub(crate) async fn run(bind: Option<SocketAddr>, fake_bind: SocketAddr) -> anyhow::Result<()> {
    telemetry::init(telemetry::format_from_env());
    let (bind, source) = start::resolve_bind(bind, std::env::var("BIND_ADDR").ok().as_deref())?;
    // Both ports first: a taken one fails at once, before the database.
    let fake_listener = start::listen(fake_bind, start::Role::FakeGoogle).await?;
    let listener = start::listen(bind, start::Role::Service(source)).await?;
    // The browser is sent to the fake: never to 0.0.0.0.
    let fake_addr = fake_listener.local_addr()?;
    let fake_base = format!("http://{}", start::reachable(fake_addr));
    let database_url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEMO_DATABASE_URL.to_string());
    store::ensure_database(&database_url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot prepare the demo database ({e}); is PostgreSQL running? set DATABASE_URL"
        )
    })?;
    let pool = connect_with_retry(&database_url, &crate::config::PoolSettings::default()).await?;
    let key_source = start::KeySource::from_env();
    let addr = listener.local_addr()?;
    let settings =
        demo_settings(addr, &fake_base, &database_url).map_err(|e| anyhow::anyhow!("{e}"))?;

    let mut fake_config = FakeConfig::with_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    fake_config.redirect_uris = vec![settings.redirect_uri("gmail").to_string()];
    let fake = FakeGoogle::new(fake_config);
    let banner = start::Banner {
        base: settings.public_base_url.to_string(),
        addr,
        source,
        fake_base,
        database: redact_url(&database_url),
        key: key_source.shown(&settings),
    };
    let app = application(settings, pool, listener, fake.clone());
    seed(&app.state().passport, &fake).await?;
    tracing::info!(%addr, bind_from = %source, fake = %fake_addr, "auth-server demo listening");
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "not a loopback address: other machines may reach the demo, which signs anyone in; --bind 127.0.0.1:PORT keeps it local");
    }
    print!("{}", banner.text());
    let fake_router = fake.router();
    // The fake stops with the service (aborted below): one signal handler.
    let fake_task = tokio::spawn(async move { axum::serve(fake_listener, fake_router).await });
    app.run_until_stopped(shutdown_signal()).await?;
    fake_task.abort();
    tracing::info!("auth-server demo stopped");
    Ok(())
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable)".into(),
    }
}
