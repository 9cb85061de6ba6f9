//! The command line: `serve` (default), `init`, `check-settings`, `migrate`,
//! `demo`, `doctor`, `report`, `ledger`, `rotate-keys`, `webhooks retry`,
//! `risc register`, `risc backfill`, `fake-google`.

mod init;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Settings, TrustedProxies};
use crate::fake_google::{FakeConfig, FakeGoogle};
use crate::passport::report::{self, MissingUser, Report};
use crate::scopes::ScopeSet;
use crate::startup::{operator_passport, shutdown_signal, Application};
use crate::store::webhook_outbox::Backlog;
use crate::{startup, store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "auth-server",
    version,
    about = "Gmail Passport: Google consent, 재인증 and tokens for ro-being"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default). Settings come from the environment / .env.
    Serve,
    /// Print fresh secrets for .env: internal API keys (one per skill), a
    /// token encryption key and a webhook secret. Touches nothing else.
    Init {
        /// The skills that get an internal API key, in order (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "skill-calendar,skill-gmail"
        )]
        skills: Vec<String>,
        /// Id of the token encryption key (default: k + today's date, UTC).
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Check the settings (environment / .env) as the start does, secrets
    /// included, and say whether they pass; connects to nothing.
    CheckSettings,
    /// Adopt the old service's gmail_token table, apply the database
    /// migrations and exit.
    Migrate {
        /// Print the live table's shape and every statement the adoption and
        /// the pending migrations would run, with the rows each touches;
        /// change nothing. Exits non-zero when the table cannot be adopted.
        #[arg(long)]
        plan: bool,
    },
    /// Run the service, a fake Google and a demo sign-in page, for a first look.
    Demo {
        /// Where the service listens [default: BIND_ADDR, else 127.0.0.1:51123].
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Where the fake Google listens.
        #[arg(long, default_value = "127.0.0.1:51124")]
        fake_bind: SocketAddr,
    },
    /// Diagnose one user's connection: the checks an operator runs by hand,
    /// and the cause in plain words with its fix.
    Doctor {
        /// The ro-being user id.
        #[arg(long)]
        user: uuid::Uuid,
        /// Print JSON (the same as GET /internal/passport/gmail/users/{id}/diagnosis).
        #[arg(long)]
        json: bool,
    },
    /// The rollout report: connections by status and who lacks which scope.
    Report {
        /// List the users lacking this scope (e.g. `calendar`).
        #[arg(long)]
        missing: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// The fetch ledger of one user: which caller (internal API key, by
    /// name) was handed how many tokens for which scopes, minute by minute.
    Ledger {
        /// The ro-being user id.
        #[arg(long)]
        user: uuid::Uuid,
        /// From this time (RFC 3339) [default: the last 24 hours].
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this caller (a name of INTERNAL_API_KEYS).
        #[arg(long)]
        caller: Option<String>,
        /// Print JSON (the same as GET /internal/passport/gmail/users/{id}/ledger).
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every stored token under the active key of
    /// TOKEN_ENCRYPTION_KEYS (the first), in batches, while serving goes on.
    RotateKeys {
        /// Rows per batch.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
    /// Webhook outbox operations.
    Webhooks {
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Google's revocation signals (RISC): registering the receiver, and
    /// filling the refresh-token identifiers `token-revoked` events match.
    Risc {
        #[command(subcommand)]
        action: RiscAction,
    },
    /// Run only the fake Google (for local development against `serve`).
    FakeGoogle {
        #[arg(long, default_value = "127.0.0.1:51124")]
        bind: SocketAddr,
        /// OAuth client id the fake accepts.
        #[arg(long, env = "GOOGLE_CLIENT_ID", default_value = crate::demo::DEMO_CLIENT_ID)]
        client_id: String,
        /// OAuth client secret the fake accepts.
        #[arg(long, env = "GOOGLE_CLIENT_SECRET", default_value = crate::demo::DEMO_CLIENT_SECRET, hide_env_values = true)]
        client_secret: String,
        /// Registered redirect URI(s); when none is given any is accepted.
        #[arg(long)]
        redirect_uri: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksAction {
    /// Put dead letters back in the queue.
    Retry {
        /// Re-queue every dead letter (required: says what is retried).
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RiscAction {
    /// Register this service's receiver with Google's RISC API
    /// (`stream:update` with every handled event type, then `stream:verify`).
    Register {
        /// The service account key file (JSON) of an account with the RISC
        /// Configuration Admin role.
        #[arg(long)]
        service_account: std::path::PathBuf,
        /// The receiver URL [default: PUBLIC_BASE_URL + /google/risc].
        #[arg(long)]
        receiver: Option<url::Url>,
    },
    /// Store the identifiers (hash, prefix MAC) of stored refresh tokens
    /// that lack them, in batches.
    Backfill {
        /// Rows per batch.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Run a command; the exit code says how it went.
pub fn run(cli: Cli) -> ExitCode {
    let _ = dotenvy::dotenv();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("auth-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve().await,
            Command::Init { skills, key_id } => init(&skills, key_id),
            Command::CheckSettings => check_settings(),
            Command::Migrate { plan: false } => migrate().await,
            Command::Migrate { plan: true } => migrate_plan().await,
            Command::Demo { bind, fake_bind } => crate::demo::run(bind, fake_bind).await,
            Command::Doctor { user, json } => doctor(user, json).await,
            Command::Report { missing, format } => report(missing, format).await,
            Command::Ledger {
                user,
                since,
                caller,
                json,
            } => ledger(user, since, caller, json).await,
            Command::RotateKeys { batch } => rotate_keys(batch).await,
            Command::Webhooks {
                action: WebhooksAction::Retry { dead },
            } => webhooks_retry(dead).await,
            Command::Risc {
                action:
                    RiscAction::Register {
                        service_account,
                        receiver,
                    },
            } => risc_register(&service_account, receiver).await,
            Command::Risc {
                action: RiscAction::Backfill { batch },
            } => risc_backfill(batch).await,
            Command::FakeGoogle {
                bind,
                client_id,
                client_secret,
                redirect_uri,
            } => fake_google(bind, client_id, client_secret, redirect_uri).await,
        }
    });
    // Tasks left behind (a connection still draining, a blocking DNS lookup)
    // must not hold the exit past the shutdown deadline.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    telemetry::init(settings.log_format);
    if settings.allow_plaintext_tokens {
        tracing::warn!(
            "ALLOW_PLAINTEXT_TOKENS=true: new tokens are written UNENCRYPTED for the cut-over; \
             turn it off once no service reads gmail_token directly, then run `auth-server rotate-keys`"
        );
    }
    if settings.token_keys.is_empty() {
        tracing::warn!(
            "TOKEN_ENCRYPTION_KEYS is empty: no stored scope list can be vouched for (scopes_mac),              so each is checked with Google whenever a connection is read from the database"
        );
    }
    log_trusted_proxies(&settings.trusted_proxies);
    let public = settings.public_base_url.clone();
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr()?, %public, "auth-server listening");
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("auth-server stopped");
    Ok(())
}

/// Say at start whose `X-Forwarded-For` is believed (docs/operations.md,
/// "Behind a reverse proxy").
fn log_trusted_proxies(trusted: &TrustedProxies) {
    if trusted.is_empty() {
        tracing::info!(
            trusted_proxies = %trusted,
            "TRUSTED_PROXIES is empty: X-Forwarded-For is ignored, anonymous clients are \
             rate-limited by the address they connect from"
        );
    } else {
        tracing::info!(
            trusted_proxies = %trusted,
            "trusted proxies: X-Forwarded-For names the client when the request comes from {trusted}"
        );
    }
}

async fn doctor(user: uuid::Uuid, json: bool) -> anyhow::Result<()> {
    let passport = operator_passport().await?;
    let d = passport.diagnose(passport.gmail(), user).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", d.to_text());
    }
    Ok(())
}

async fn ledger(
    user: uuid::Uuid,
    since: Option<chrono::DateTime<chrono::Utc>>,
    caller: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    if caller
        .as_deref()
        .is_some_and(|c| !crate::config::is_key_name(c))
    {
        anyhow::bail!("--caller: not a key name (lowercase letters, digits, `_` and `-`)");
    }
    let passport = operator_passport().await?;
    let view = passport
        .ledger(passport.gmail(), user, since, caller.as_deref())
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.to_text());
    }
    passport.db().close().await;
    Ok(())
}

async fn report(missing: Option<String>, format: ReportFormat) -> anyhow::Result<()> {
    let passport = operator_passport().await?;
    match missing {
        None => {
            let r = passport.report(passport.gmail()).await?;
            let b = passport.webhook_backlog().await?;
            print_report(&r, &b, format)?;
        }
        Some(scope) => {
            let scope = ScopeSet::parse_known([scope.as_str()])
                .map_err(|e| anyhow::anyhow!("--missing: {e}"))?;
            let users = passport.missing_users(&scope).await?;
            print_missing(&scope, &users, format)?;
        }
    }
    passport.db().close().await;
    Ok(())
}

fn print_report(r: &Report, b: &Backlog, format: ReportFormat) -> anyhow::Result<()> {
    match format {
        ReportFormat::Json => {
            let mut v = serde_json::to_value(r)?;
            v["webhooks"] = serde_json::json!({
                "pending": b.pending, "dead": b.dead, "delivered": b.delivered,
                "oldest_pending": b.oldest_pending,
            });
            println!("{}", serde_json::to_string_pretty(&v)?)
        }
        ReportFormat::Table => {
            print!("{}", r.to_text());
            let oldest = b
                .oldest_pending
                .map(|t| format!("\n  oldest pending   {}", t.to_rfc3339()));
            println!(
                "\nwebhooks / 웹훅\n  pending          {:>8}\n  dead letters     {:>8}\n  delivered        {:>8}{}",
                b.pending,
                b.dead,
                b.delivered,
                oldest.unwrap_or_default()
            );
        }
        ReportFormat::Csv => print!("{}", report::summary_csv(r)),
    }
    Ok(())
}

fn print_missing(
    scope: &ScopeSet,
    users: &[MissingUser],
    format: ReportFormat,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Csv => print!("{}", report::to_csv(users)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(users)?),
        ReportFormat::Table => {
            println!("{} users lack {scope}", users.len());
            for u in users {
                let consent = u.last_consent_at.map(|t| t.to_rfc3339());
                println!(
                    "  {}  {:<32} {:<16} {}",
                    u.user_id,
                    u.email.as_deref().unwrap_or("-"),
                    u.status.as_str(),
                    consent.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}

async fn webhooks_retry(dead: bool) -> anyhow::Result<()> {
    if !dead {
        anyhow::bail!("say what to retry: `auth-server webhooks retry --dead`");
    }
    let passport = operator_passport().await?;
    let n = passport.retry_dead_webhooks().await?;
    println!("{n} dead letters re-queued; the dispatcher delivers them shortly");
    passport.db().close().await;
    Ok(())
}

async fn rotate_keys(batch: i64) -> anyhow::Result<()> {
    let passport = operator_passport().await?;
    let Some(active) = passport.active_key().map(str::to_string) else {
        anyhow::bail!(
            "no active key: set TOKEN_ENCRYPTION_KEYS (the first key is the active one) and unset ALLOW_PLAINTEXT_TOKENS"
        );
    };
    if !(1..=10_000).contains(&batch) {
        anyhow::bail!("--batch must be between 1 and 10000");
    }
    let r = passport.rotate_keys(batch).await?;
    println!(
        "active key {active}: {} rows scanned, {} re-encrypted, {} already current, {} changed meanwhile (current), {} consent verifiers re-encrypted",
        r.rows_scanned, r.rows_rewritten, r.rows_current, r.rows_changed_meanwhile, r.verifiers_rewritten
    );
    passport.db().close().await;
    if !r.unreadable.is_empty() {
        anyhow::bail!(
            "{} rows use a key that is not in TOKEN_ENCRYPTION_KEYS and were left as they are: {}",
            r.unreadable.len(),
            r.unreadable
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn risc_register(file: &std::path::Path, receiver: Option<url::Url>) -> anyhow::Result<()> {
    let json = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--service-account {}: {e}", file.display()))?;
    let passport = operator_passport().await?;
    let r = passport.register_risc_stream(&json, receiver).await;
    passport.db().close().await;
    let r = r?;
    println!(
        "registered the RISC receiver {} as {} for {} event types:",
        r.receiver,
        r.service_account,
        r.events.len()
    );
    for e in &r.events {
        println!("  {e}");
    }
    println!(
        "asked Google for a verification event (state {:?}); the receiver logs it when it arrives",
        r.state
    );
    Ok(())
}

async fn risc_backfill(batch: i64) -> anyhow::Result<()> {
    if !(1..=10_000).contains(&batch) {
        anyhow::bail!("--batch must be between 1 and 10000");
    }
    let passport = operator_passport().await?;
    let n = passport.backfill_refresh_ids(batch).await?;
    passport.db().close().await;
    println!("{n} refresh tokens identified for RISC token-revoked events");
    Ok(())
}

fn check_settings() -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let plaintext = if settings.allow_plaintext_tokens {
        "; ALLOW_PLAINTEXT_TOKENS=true: tokens are written unencrypted"
    } else {
        ""
    };
    println!(
        "settings ok: {} internal API key(s), {} token encryption key(s), webhooks {}{plaintext}",
        settings.internal_api_keys.len(),
        settings.token_keys.len(),
        if settings.webhooks.is_some() {
            "on"
        } else {
            "off"
        },
    );
    Ok(())
}

fn init(skills: &[String], key_id: Option<String>) -> anyhow::Result<()> {
    if let Some(bad) = skills.iter().find(|s| !init::valid_skill(s)) {
        anyhow::bail!(
            "--skills: `{}` is not a skill name (letters, digits, `-`, `_`, `.`)",
            bad.escape_debug()
        );
    }
    if skills.is_empty() {
        anyhow::bail!("--skills: name at least one skill");
    }
    let now = chrono::Utc::now();
    let key_id = key_id.unwrap_or_else(|| format!("k{}", now.format("%Y%m%d")));
    if !crate::crypto::is_key_id(&key_id) {
        anyhow::bail!("--key-id: {}", crate::crypto::KEY_ID_RULE);
    }
    print!(
        "{}",
        init::secrets_block(skills, &key_id, &now.format("%Y-%m-%d").to_string())
    );
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    telemetry::init(telemetry::format_from_env());
    let url =
        std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL is not set"))?;
    let pool = startup::connect_with_retry(&url, &crate::config::PoolSettings::default()).await?;
    let n = store::MIGRATOR.iter().count();
    pool.close().await;
    println!("migrations applied ({n} known)");
    Ok(())
}

async fn migrate_plan() -> anyhow::Result<()> {
    let url =
        std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL is not set"))?;
    let preview = store::legacy::preview_database(&url)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?;
    print!("{}", preview.to_text());
    if preview.is_refused() {
        anyhow::bail!("gmail_token cannot be adopted as it is (see above); `migrate` would stop");
    }
    Ok(())
}

async fn fake_google(
    bind: SocketAddr,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
) -> anyhow::Result<()> {
    telemetry::init(telemetry::format_from_env());
    let mut config = FakeConfig::with_client(&client_id, &client_secret);
    config.redirect_uris = redirect_uris;
    let fake = FakeGoogle::new(config);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("fake Google listening on http://{bind} (client id {client_id})");
    axum::serve(listener, fake.router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
