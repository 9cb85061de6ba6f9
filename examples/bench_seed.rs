//! Seed a benchmark database fast (issue 6, `bench/run.sh`).
//!
//! ```sh
//! cargo run --release --example bench_seed -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/authbench \
//!     --users 10000 --jwt-file /tmp/jwts.txt --ids-file /tmp/ids.txt
//! ```
//!
//! * `--users N` valid connections, user ids `Uuid::from_u128(offset + 1)` …
//!   `Uuid::from_u128(offset + N)` (so `00000000-0000-0000-0000-000000000001`
//!   and up: load scripts pick a random number and print it as 32 hex digits;
//!   SQL builds the same id with `lpad(to_hex(n), 32, '0')::uuid`). Tokens are
//!   sealed with `TOKEN_ENCRYPTION_KEYS` exactly as the service stores them,
//!   valid for one hour, with all seven scopes.
//! * `--expired M` more users, numbered from `--expired-offset` (default
//!   `offset + N`) + 1, whose access tokens expired a second ago and whose
//!   refresh tokens come from the fake Google's `/__fake/seed-grant`, so the
//!   token API refreshes them for real (the refresh-storm scenario).
//! * Rows go in with `INSERT … SELECT FROM unnest(…)` in batches (default
//!   10,000), two batches in flight. Existing rows are overwritten.
//! * `--skip-triggers` seeds with `session_replication_role = replica`, so the
//!   `gmail_token_notify` trigger does not queue one NOTIFY per row: only for a
//!   bulk load of users no running server has cached (the 1M-row seed before
//!   the server starts). Needs a superuser; falls back to triggers on.
//! * `--jwt-file` writes session JWTs (HS256, `SESSION_JWT_SECRET`, 24 h) for
//!   the first `--jwt-count` users, one per line; `--ids-file` the user ids.
//!
//! Uses the service's own migrations, cipher and scope list, so the rows are
//! exactly what the service would have written.

use std::io::Write;
use std::time::{Duration, Instant};

use auth_server::crypto::{parse_keys, Field, ScopesOf, TokenCipher};
use auth_server::scopes::default_gmail_scopes;
use auth_server::store::gmail_token;
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::task::JoinSet;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(about = "Seed gmail_token for benchmarks")]
struct Args {
    /// The benchmark database (created by the caller; migrated here).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// `id:base64key` as the server's TOKEN_ENCRYPTION_KEYS.
    #[arg(long, env = "TOKEN_ENCRYPTION_KEYS", hide_env_values = true)]
    keys: String,
    /// Connected users with valid tokens.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// User numbers start after this.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Users whose access tokens have just expired (refresh tokens from the fake).
    #[arg(long, default_value_t = 0)]
    expired: u64,
    /// Expired users' numbers start after this (default: offset + users).
    #[arg(long)]
    expired_offset: Option<u64>,
    /// The fake Google (needed with --expired).
    #[arg(long)]
    fake_url: Option<String>,
    /// The fake Google account the expired users' grants belong to.
    #[arg(long, default_value = "jisoo@example.com")]
    fake_account: String,
    /// Rows per INSERT.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Seed with session_replication_role = replica (no NOTIFY per row).
    #[arg(long)]
    skip_triggers: bool,
    /// Skip VACUUM ANALYZE afterwards.
    #[arg(long)]
    no_vacuum: bool,
    /// Write session JWTs (one per line) here.
    #[arg(long)]
    jwt_file: Option<std::path::PathBuf>,
    /// How many JWTs (for the first users).
    #[arg(long, default_value_t = 10_000)]
    jwt_count: u64,
    /// HS256 secret of the session JWTs.
    #[arg(long, env = "SESSION_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Write the valid users' ids (one per line) here.
    #[arg(long)]
    ids_file: Option<std::path::PathBuf>,
}

/// The id of benchmark user number `n` (1-based).
fn user_id(n: u64) -> Uuid {
    Uuid::from_u128(u128::from(n))
}

type Batch = gmail_token::BulkConnections;

async fn insert(pool: PgPool, scopes: serde_json::Value, b: Batch) -> anyhow::Result<u64> {
    Ok(gmail_token::upsert_many(&pool, &b, scopes).await?)
}

/// The MAC the service writes beside the scopes (all seven, as seeded).
fn scopes_mac(cipher: &TokenCipher, user: Uuid, sub: &str, refresh: &str) -> String {
    let scopes = default_gmail_scopes();
    let list: Vec<&str> = scopes.iter().collect();
    let of = ScopesOf {
        user,
        google_sub: Some(sub),
        refresh_token: Some(refresh),
    };
    cipher
        .scopes_mac(of, &list)
        .expect("the seed always has a key")
}

fn valid_batch(cipher: &TokenCipher, from: u64, to: u64) -> Batch {
    let len = (to - from) as usize;
    let mut b = Batch {
        user_ids: Vec::with_capacity(len),
        emails: Vec::with_capacity(len),
        google_subs: Vec::with_capacity(len),
        access_tokens: Vec::with_capacity(len),
        refresh_tokens: Vec::with_capacity(len),
        scopes_macs: Vec::with_capacity(len),
        expires_in_secs: 3600.0,
    };
    for n in from..to {
        let id = user_id(n);
        let sub = format!("bench-sub-{n}");
        let refresh = format!("1//bench-refresh-{n:x}-{:016x}", rand::random::<u64>());
        b.user_ids.push(id);
        b.emails.push(format!("bench-{n}@example.com"));
        b.access_tokens.push(cipher.seal(
            id,
            Field::AccessToken,
            &format!("ya29.bench-access-{n:x}-{:016x}", rand::random::<u64>()),
        ));
        b.refresh_tokens
            .push(cipher.seal(id, Field::RefreshToken, &refresh));
        b.scopes_macs.push(scopes_mac(cipher, id, &sub, &refresh));
        b.google_subs.push(sub);
    }
    b
}

#[derive(serde::Deserialize)]
struct SeedGrant {
    access_token: String,
    refresh_token: String,
}

/// One fresh grant per expired user from the fake Google.
async fn fake_grants(fake_url: &str, account: &str, count: u64) -> anyhow::Result<Vec<SeedGrant>> {
    let http = reqwest::Client::new();
    let scopes: Vec<&str> = auth_server::scopes::KNOWN_SCOPES
        .iter()
        .map(|s| s.short)
        .collect();
    let url = format!("{}/__fake/seed-grant", fake_url.trim_end_matches('/'));
    let mut set = JoinSet::new();
    let mut out: Vec<Option<SeedGrant>> = (0..count).map(|_| None).collect();
    let mut next = 0u64;
    let mut done = 0u64;
    while done < count {
        while next < count && set.len() < 16 {
            let (http, url, body) = (
                http.clone(),
                url.clone(),
                serde_json::json!({"email": account, "scopes": scopes}),
            );
            let i = next;
            set.spawn(async move {
                let resp = http.post(&url).json(&body).send().await?;
                let status = resp.status();
                if !status.is_success() {
                    anyhow::bail!("{url} answered {status}: {}", resp.text().await?);
                }
                Ok::<_, anyhow::Error>((i, resp.json::<SeedGrant>().await?))
            });
            next += 1;
        }
        if let Some(r) = set.join_next().await {
            let (i, g) = r??;
            out[i as usize] = Some(g);
            done += 1;
        }
    }
    Ok(out.into_iter().flatten().collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let keys = parse_keys(&args.keys).map_err(|e| anyhow::anyhow!("TOKEN_ENCRYPTION_KEYS: {e}"))?;
    anyhow::ensure!(!keys.is_empty(), "TOKEN_ENCRYPTION_KEYS holds no key");
    let cipher = std::sync::Arc::new(TokenCipher::new(&keys, false));
    let scopes = default_gmail_scopes().to_json();

    // The service's own schema.
    auth_server::store::connect_and_migrate(&args.database_url, &Default::default())
        .await?
        .close()
        .await;

    let opts: PgConnectOptions = args.database_url.parse()?;
    let mut skip_triggers = args.skip_triggers;
    if skip_triggers {
        // Check once that we may (superuser only).
        let probe = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        if let Err(e) = probe
            .execute("SET session_replication_role = replica")
            .await
        {
            eprintln!("bench_seed: cannot skip triggers ({e}); seeding with triggers on");
            skip_triggers = false;
        }
        probe.close().await;
    }
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(60))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if skip_triggers {
                    conn.execute("SET session_replication_role = replica")
                        .await?;
                }
                conn.execute("SET synchronous_commit = off").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;

    // Valid users, two batches in flight while the next is sealed.
    let first = args.offset + 1;
    let end = first + args.users;
    let mut inflight: JoinSet<anyhow::Result<u64>> = JoinSet::new();
    let mut inserted = 0u64;
    let mut from = first;
    let batch = args.batch.max(1) as u64;
    while from < end {
        let to = (from + batch).min(end);
        let c = cipher.clone();
        let b = tokio::task::spawn_blocking(move || valid_batch(&c, from, to)).await?;
        while inflight.len() >= 2 {
            inserted += inflight.join_next().await.expect("non-empty")??;
        }
        inflight.spawn(insert(pool.clone(), scopes.clone(), b));
        from = to;
    }
    while let Some(r) = inflight.join_next().await {
        inserted += r??;
    }
    let valid_secs = started.elapsed().as_secs_f64();

    // Expired users with real (fake) refresh tokens.
    let expired_first = args.expired_offset.unwrap_or(args.offset + args.users) + 1;
    if args.expired > 0 {
        let fake = args
            .fake_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--expired needs --fake-url"))?;
        let grants = fake_grants(fake, &args.fake_account, args.expired).await?;
        let fake_sub = auth_server::fake_google::FakeConfig::with_client("x", "y")
            .accounts
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(&args.fake_account))
            .map(|a| a.sub.clone())
            .unwrap_or_default();
        let mut b = Batch {
            user_ids: Vec::new(),
            emails: Vec::new(),
            google_subs: Vec::new(),
            access_tokens: Vec::new(),
            refresh_tokens: Vec::new(),
            scopes_macs: Vec::new(),
            // Just expired: well inside the refresh margin.
            expires_in_secs: -1.0,
        };
        for (i, g) in grants.iter().enumerate() {
            let id = user_id(expired_first + i as u64);
            b.user_ids.push(id);
            b.emails.push(args.fake_account.clone());
            b.google_subs.push(fake_sub.clone());
            b.access_tokens
                .push(cipher.seal(id, Field::AccessToken, &g.access_token));
            b.refresh_tokens
                .push(cipher.seal(id, Field::RefreshToken, &g.refresh_token));
            b.scopes_macs
                .push(scopes_mac(&cipher, id, &fake_sub, &g.refresh_token));
        }
        for chunk in (0..b.user_ids.len())
            .collect::<Vec<_>>()
            .chunks(batch as usize)
        {
            let part = Batch {
                user_ids: chunk.iter().map(|&i| b.user_ids[i]).collect(),
                emails: chunk.iter().map(|&i| b.emails[i].clone()).collect(),
                google_subs: chunk.iter().map(|&i| b.google_subs[i].clone()).collect(),
                access_tokens: chunk.iter().map(|&i| b.access_tokens[i].clone()).collect(),
                refresh_tokens: chunk.iter().map(|&i| b.refresh_tokens[i].clone()).collect(),
                scopes_macs: chunk.iter().map(|&i| b.scopes_macs[i].clone()).collect(),
                expires_in_secs: b.expires_in_secs,
            };
            insert(pool.clone(), scopes.clone(), part).await?;
        }
    }

    if !args.no_vacuum {
        // Fresh rows: set hint bits and statistics now, not during the run.
        sqlx::raw_sql("VACUUM (ANALYZE) gmail_token")
            .execute(&pool)
            .await?;
    }
    let total = gmail_token::count(&pool).await?;
    pool.close().await;

    if let Some(path) = &args.ids_file {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for n in first..end {
            writeln!(f, "{}", user_id(n))?;
        }
        f.flush()?;
    }
    if let Some(path) = &args.jwt_file {
        let secret = args
            .jwt_secret
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--jwt-file needs SESSION_JWT_SECRET"))?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for n in first..first + args.jwt_count.min(args.users) {
            let jwt = auth_server::demo::session_jwt(
                secret.as_bytes(),
                user_id(n),
                chrono::Duration::hours(24),
            );
            writeln!(f, "{jwt}")?;
        }
        f.flush()?;
    }

    println!(
        "SEED valid={inserted} valid_first={first} expired={} expired_first={expired_first} \
         rows_total={total} seconds={:.1} valid_rows_per_s={:.0} triggers={}",
        args.expired,
        started.elapsed().as_secs_f64(),
        inserted as f64 / valid_secs.max(1e-9),
        if skip_triggers { "skipped" } else { "on" },
    );
    Ok(())
}
