//! Test harness: a fresh database per test, the fake Google and the app each on
//! port 0, and one helper per endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use auth_server::crypto::Field;
use auth_server::fake_google::{FakeConfig, FakeGoogle};
use auth_server::startup::Application;
pub use auth_server::store::gmail_token::ConnectionStatus;
pub use auth_server::store::passport_event::EventKind;
use auth_server::store::{self, gmail_token, passport_event};
use auth_server::Settings;
use reqwest::cookie::Jar;
use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode};
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgPool};
use url::Url;
use uuid::Uuid;

pub const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
pub const JWT_SECRET: &str = "test-session-secret-0123456789-abcdefghijkl";
/// Random, as `auth-server init` makes them: the start refuses weak ones.
pub const INTERNAL_KEY: &str = "test-ZRwYUQy-4ltdqYDuF9B7aiZge3amwUkr";
/// Two AES-256 keys (32 random bytes each): `t1` is active in tests, `t0` an
/// older one.
pub const KEY_T1: &str = "t1:5GOtxbLAsRGHIso53jJbP8VbKpQ0YRTvBms3/bR1mtY=";
pub const KEY_T0: &str = "t0:GEmQ8vqO3LmlEjJ5VqRitjHZP+CjTNe48htmgOocGu8=";
pub const ROBEING: &str = "https://ro-being.com";
pub const JISOO: &str = "jisoo@example.com";
pub const MINHO: &str = "minho@example.com";

pub const GMAIL_ONLY: &[&str] = &[
    "gmail.send",
    "gmail.readonly",
    "gmail.modify",
    "userinfo.email",
    "userinfo.profile",
];
pub const ALL: &[&str] = &[
    "gmail.send",
    "gmail.readonly",
    "gmail.modify",
    "userinfo.email",
    "userinfo.profile",
    "calendar",
    "calendar.events",
];

pub fn full(short: &str) -> String {
    format!("https://www.googleapis.com/auth/{short}")
}

/// The server that tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Create an empty database for one test; returns its URL.
pub async fn fresh_database() -> String {
    let admin: PgConnectOptions = admin_url().parse().expect("admin URL parses");
    // `scripts/test.sh` names its run so that it drops only its own databases.
    let run = std::env::var("TEST_RUN_ID").unwrap_or_else(|_| "adhoc".into());
    let name = format!("authtest_{run}_{}", Uuid::new_v4().simple());
    let mut conn = admin
        .clone()
        .database("postgres")
        .connect()
        .await
        .expect("connect to PostgreSQL (set TEST_DATABASE_URL)");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let mut url = Url::parse(&admin_url()).expect("admin URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub struct TestApp {
    pub addr: String,
    pub db: PgPool,
    pub database_url: String,
    pub fake: FakeGoogle,
    pub fake_addr: String,
    pub settings: Settings,
    pub cipher: auth_server::crypto::TokenCipher,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawn with extra or overriding settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let database_url = fresh_database().await;
        Self::spawn_on(database_url, extra).await
    }

    /// Spawn against an existing database (migrations run at start).
    pub async fn spawn_on(database_url: String, extra: &[(&str, &str)]) -> Self {
        let fake = FakeGoogle::new(FakeConfig::with_client(CLIENT_ID, CLIENT_SECRET));
        let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake_addr = format!("http://{}", fake_listener.local_addr().unwrap());
        let router = fake.router();
        tokio::spawn(async move { axum::serve(fake_listener, router).await });
        Self::spawn_full(database_url, fake, fake_addr, extra).await
    }

    /// A second server instance on the same database and the same fake Google.
    pub async fn sibling(&self, extra: &[(&str, &str)]) -> Self {
        Self::spawn_full(
            self.database_url.clone(),
            self.fake.clone(),
            self.fake_addr.clone(),
            extra,
        )
        .await
    }

    pub async fn spawn_full(
        database_url: String,
        fake: FakeGoogle,
        fake_addr: String,
        extra: &[(&str, &str)],
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let mut pairs: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", database_url.clone()),
            ("PUBLIC_BASE_URL", addr.clone()),
            ("GOOGLE_CLIENT_ID", CLIENT_ID.into()),
            ("GOOGLE_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("GOOGLE_AUTH_URL", format!("{fake_addr}/o/oauth2/v2/auth")),
            ("GOOGLE_TOKEN_URL", format!("{fake_addr}/token")),
            ("GOOGLE_USERINFO_URL", format!("{fake_addr}/v1/userinfo")),
            ("GOOGLE_REVOKE_URL", format!("{fake_addr}/revoke")),
            ("GOOGLE_TOKENINFO_URL", format!("{fake_addr}/tokeninfo")),
            ("GOOGLE_API_BASE_URL", fake_addr.clone()),
            (
                "GOOGLE_RISC_CONFIG_URL",
                format!("{fake_addr}/.well-known/risc-configuration"),
            ),
            ("GOOGLE_RISC_API_URL", fake_addr.clone()),
            ("ALLOWED_RETURN_ORIGINS", ROBEING.into()),
            ("INVENTORY_URL", format!("{ROBEING}/settings/items")),
            ("SESSION_JWT_SECRET", JWT_SECRET.into()),
            ("INTERNAL_API_KEYS", INTERNAL_KEY.into()),
            ("GOOGLE_HTTP_TIMEOUT_SECS", "5".into()),
            ("TOKEN_ENCRYPTION_KEYS", format!("{KEY_T1},{KEY_T0}")),
        ]);
        for (k, v) in extra {
            pairs.insert(k, v.to_string());
        }
        let settings = Settings::from_pairs(pairs).expect("test settings are valid");
        fake.register_redirect_uri(settings.redirect_uri("gmail").as_str());

        let db = store::connect_and_migrate(&database_url, &settings.database)
            .await
            .expect("migrate");
        let app = Application::with_parts(settings.clone(), db.clone(), listener);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            db,
            database_url,
            fake,
            fake_addr,
            cipher: auth_server::crypto::TokenCipher::new(
                &settings.token_keys,
                settings.allow_plaintext_tokens,
            ),
            settings,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    /// A browser signed in as `user` (session cookie), without following redirects.
    pub fn browser(&self, user: Option<Uuid>) -> Browser {
        let jar = Arc::new(Jar::default());
        if let Some(u) = user {
            let jwt = session_for(u);
            jar.add_cookie_str(
                &format!("access_token={jwt}; Path=/"),
                &self.addr.parse().unwrap(),
            );
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Browser {
            client,
            jar,
            app: self.addr.clone(),
            fake: self.fake_addr.clone(),
        }
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// A plain client (no cookies, no redirects).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A passport as the service stores it (sealed, its scopes under their MAC):
    /// seeded at the fake Google and
    /// stored for `user`. Returns `(access, refresh)`.
    pub async fn seed_passport(
        &self,
        user: Uuid,
        email: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let (access, refresh) = self.fake.seed_grant(email, scopes).expect("known account");
        let account = self.fake.account(email).unwrap().clone();
        let granted = auth_server::scopes::ScopeSet::parse_known(scopes.iter().copied()).unwrap();
        // The MAC the service writes beside the scopes it stores.
        let of = auth_server::crypto::ScopesOf {
            user,
            google_sub: Some(&account.sub),
            refresh_token: Some(&refresh),
        };
        let list: Vec<&str> = granted.iter().collect();
        let mac = self.cipher.scopes_mac(of, &list);
        gmail_token::upsert_consent(
            &self.db,
            &gmail_token::ConsentWrite {
                user_id: user,
                email: Some(email),
                google_sub: &account.sub,
                access_token: &self.cipher.seal(user, Field::AccessToken, &access),
                refresh_token: Some(&self.cipher.seal(user, Field::RefreshToken, &refresh)),
                token_type: "Bearer",
                expires_at: Some(chrono::Utc::now() + chrono::Duration::minutes(50)),
                scopes: granted.to_json(),
                scopes_mac: mac.as_deref(),
                last_error: None,
            },
        )
        .await
        .unwrap();
        (access, refresh)
    }

    pub async fn row(&self, user: Uuid) -> Option<gmail_token::TokenRow> {
        gmail_token::find(&self.db, user).await.unwrap()
    }

    /// The stored access token, decrypted.
    pub async fn access_of(&self, user: Uuid) -> Option<String> {
        let row = self.row(user).await?;
        self.cipher
            .open_opt(user, Field::AccessToken, row.access_token.as_deref())
            .unwrap()
            .map(|s| s.expose_secret().to_string())
    }

    /// The stored refresh token, decrypted.
    pub async fn refresh_of(&self, user: Uuid) -> Option<String> {
        let row = self.row(user).await?;
        self.cipher
            .open_opt(user, Field::RefreshToken, row.refresh_token.as_deref())
            .unwrap()
            .map(|s| s.expose_secret().to_string())
    }

    pub async fn events(&self, user: Uuid) -> Vec<passport_event::EventRow> {
        passport_event::recent_for_user(&self.db, user, "gmail", 100)
            .await
            .unwrap()
    }

    /// Everything the database holds, as text, to prove that nothing changed.
    pub async fn snapshot(&self) -> DbSnapshot {
        let tokens: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(t)::text FROM gmail_token t ORDER BY user_id")
                .fetch_all(&self.db)
                .await
                .unwrap();
        let events: Vec<String> =
            sqlx::query_scalar("SELECT row_to_json(e)::text FROM passport_event e ORDER BY id")
                .fetch_all(&self.db)
                .await
                .unwrap();
        let states: Vec<String> =
            sqlx::query_scalar("SELECT encode(state_hash, 'hex') FROM oauth_state ORDER BY 1")
                .fetch_all(&self.db)
                .await
                .unwrap();
        DbSnapshot {
            tokens,
            events,
            states,
        }
    }

    /// `POST /internal/passport/gmail/token` with the internal key.
    pub async fn token(
        &self,
        user: Uuid,
        scopes: &[&str],
    ) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
        let resp = self
            .client()
            .post(self.url("/internal/passport/gmail/token"))
            .bearer_auth(INTERNAL_KEY)
            .json(&serde_json::json!({"user_id": user, "scopes": scopes}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body, headers)
    }

    /// Make the stored access token expired.
    pub async fn expire(&self, user: Uuid) {
        sqlx::query(
            "UPDATE gmail_token SET expires_at = now() - interval '1 minute' WHERE user_id = $1",
        )
        .bind(user)
        .execute(&self.db)
        .await
        .unwrap();
    }

    /// Consent attempts not done (in flight, or left in use); done ones stay
    /// until they expire.
    pub async fn state_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM oauth_state WHERE done_at IS NULL")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSnapshot {
    pub tokens: Vec<String>,
    pub events: Vec<String>,
    pub states: Vec<String>,
}

/// A valid ro-being session for a user.
pub fn session_for(user: Uuid) -> String {
    auth_server::demo::session_jwt(JWT_SECRET.as_bytes(), user, chrono::Duration::hours(1))
}

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub app: String,
    pub fake: String,
}

pub fn location(resp: &Response) -> Url {
    let loc = resp
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location on {} response", resp.status()))
        .to_str()
        .unwrap();
    Url::parse(loc).unwrap_or_else(|_| panic!("Location {loc} is not absolute"))
}

pub fn query_map(url: &Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Browser {
    pub async fn get(&self, path_or_url: &str) -> Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.app, path_or_url)
        };
        self.client.get(url).send().await.unwrap()
    }

    /// `GET /passport/gmail/connect` with an optional `return_to`.
    pub async fn connect(&self, return_to: Option<&str>) -> Response {
        let mut url = Url::parse(&format!("{}/passport/gmail/connect", self.app)).unwrap();
        if let Some(r) = return_to {
            url.query_pairs_mut().append_pair("return_to", r);
        }
        self.client.get(url).send().await.unwrap()
    }

    /// Start a consent and return Google's authorize URL.
    pub async fn start(&self, return_to: Option<&str>) -> Url {
        let resp = self.connect(return_to).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "connect should redirect to Google"
        );
        location(&resp)
    }

    /// Decide on the fake consent screen as a person would: pick an account,
    /// tick some boxes, press Continue (or Cancel). Returns the callback URL.
    pub async fn decide(
        &self,
        authorize: &Url,
        account: &str,
        granted: &[&str],
        allow: bool,
    ) -> Url {
        let page = self.client.get(authorize.clone()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "fake consent page");
        let mut form: Vec<(String, String)> = query_map_vec(authorize);
        form.push(("account".into(), account.into()));
        for g in granted {
            form.push(("granted".into(), full(g)));
        }
        form.push((
            "decision".into(),
            if allow { "allow" } else { "deny" }.into(),
        ));
        let resp = self
            .client
            .post(format!("{}/o/oauth2/v2/auth", self.fake))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "fake Google redirects back"
        );
        location(&resp)
    }

    /// Follow the callback; returns the response (302 to return_to, or an error page).
    pub async fn callback(&self, callback: &Url) -> Response {
        self.client.get(callback.clone()).send().await.unwrap()
    }

    /// The whole journey: 재인증 → consent → callback. Returns where the
    /// browser lands.
    pub async fn reauth(
        &self,
        return_to: Option<&str>,
        account: &str,
        granted: &[&str],
        allow: bool,
    ) -> Url {
        let authorize = self.start(return_to).await;
        let cb = self.decide(&authorize, account, granted, allow).await;
        let resp = self.callback(&cb).await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "callback redirects to return_to"
        );
        location(&resp)
    }
}

pub fn query_map_vec(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `host:port` of the PostgreSQL server the tests run against ([`admin_url`]),
/// for tests that put a TCP proxy in front of it. Panics when that URL names
/// no TCP host (a Unix socket): such a test cannot run, and must not pass.
pub fn postgres_tcp_addr() -> String {
    let url = Url::parse(&admin_url()).expect("admin URL is a URL");
    let socket = url.query_pairs().any(|(k, _)| k == "host");
    match url.host_str().filter(|h| !h.is_empty() && !socket) {
        Some(host) => format!("{host}:{}", url.port().unwrap_or(5432)),
        None => panic!(
            "TEST_DATABASE_URL must name a TCP host and port: this test proxies TCP to PostgreSQL"
        ),
    }
}
