//! The refresh storm of issue 6 (`bench/run.sh`, scenario 5).
//!
//! `--requests` token requests (default 1,000), spread round-robin over
//! `--users` users (default 100) whose tokens have just expired (seeded by
//! `bench_seed --expired`), all released at the same instant against a fake
//! Google whose `/token` answers after `--token-delay-ms` (default 50). Reports
//! how many refresh grants the fake served (must equal the number of users:
//! one refresh per user however many callers ask), the wall time until every
//! request is answered, and errors.
//!
//! This is not a fixed-duration load test, so it is not driven by wrk: the
//! load generator here is the storm itself (one tokio task per request, held
//! at a barrier until all are ready).
//!
//! Prints one `STORM key=value …` line; exits non-zero if any request failed
//! or the upstream count is wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// The auth-server base URL.
    #[arg(long)]
    url: String,
    /// The fake Google base URL.
    #[arg(long)]
    fake_url: String,
    /// An internal API key.
    #[arg(long, env = "BENCH_INTERNAL_KEY", hide_env_values = true)]
    key: String,
    /// Number of the first expired user (ids are Uuid::from_u128(n)).
    #[arg(long)]
    first: u64,
    #[arg(long, default_value_t = 100)]
    users: u64,
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Latency of the fake's /token during the storm.
    #[arg(long, default_value_t = 50)]
    token_delay_ms: u64,
    /// Scope each request asks for.
    #[arg(long, default_value = "calendar.events")]
    scope: String,
}

async fn fake_calls(http: &reqwest::Client, fake: &str) -> anyhow::Result<HashMap<String, u64>> {
    Ok(http
        .get(format!("{fake}/__fake/calls"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn set_delay(http: &reqwest::Client, fake: &str, ms: u64) -> anyhow::Result<()> {
    http.put(format!("{fake}/__fake/behaviour"))
        .json(&serde_json::json!({ "token_delay_ms": ms }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct Issued {
    access_token: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.url.trim_end_matches('/').to_string();
    let fake = args.fake_url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.requests as usize)
        .timeout(Duration::from_secs(60))
        .build()?;

    set_delay(&http, &fake, args.token_delay_ms).await?;
    let before = fake_calls(&http, &fake).await?;

    let n = args.requests as usize;
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let url = Arc::new(format!("{base}/internal/passport/gmail/token"));
    let key = Arc::new(format!("Bearer {}", args.key));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..args.requests {
        let user = Uuid::from_u128(u128::from(args.first + i % args.users));
        let body = serde_json::json!({ "user_id": user, "scopes": [args.scope] });
        let (http, barrier, url, key) = (http.clone(), barrier.clone(), url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t = Instant::now();
            let r = http
                .post(url.as_str())
                .header("authorization", key.as_str())
                .json(&body)
                .send()
                .await;
            let out = match r {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.json::<Issued>().await {
                        Ok(i) if status == 200 => Ok(i.access_token),
                        _ => Err(format!("http {status}")),
                    }
                }
                Err(e) => Err(format!("transport: {e}")),
            };
            (user, out, t.elapsed(), Instant::now())
        }));
    }
    // Every task is parked at the barrier; release them together.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    barrier.wait().await;
    let mut latencies = Vec::with_capacity(n);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut tokens: HashMap<Uuid, HashSet<String>> = HashMap::new();
    let mut last = start;
    for t in tasks {
        let (user, out, lat, at) = t.await?;
        latencies.push(lat);
        last = last.max(at);
        match out {
            Ok(tok) => {
                tokens.entry(user).or_default().insert(tok);
            }
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    let wall = last - start;

    // Give the fake's counters a moment, then restore its latency.
    let after = fake_calls(&http, &fake).await?;
    set_delay(&http, &fake, 0).await?;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let upstream = delta("token.refresh_token");
    let attempts = delta("token.refresh_token.attempt");

    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let err_total: u64 = errors.values().sum();
    let max_tokens_per_user = tokens.values().map(HashSet::len).max().unwrap_or(0);
    println!(
        "STORM requests={} users={} ok={} errors={} upstream_refresh={} upstream_attempts={} \
         wall_ms={:.1} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} users_answered={} max_distinct_tokens_per_user={}",
        args.requests,
        args.users,
        args.requests - err_total,
        err_total,
        upstream,
        attempts,
        wall.as_secs_f64() * 1000.0,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        tokens.len(),
        max_tokens_per_user,
    );
    for (e, c) in &errors {
        eprintln!("bench_storm: {c} × {e}");
    }
    if err_total > 0 || upstream != args.users {
        anyhow::bail!(
            "storm failed: {err_total} errors, {upstream} upstream refreshes for {} users",
            args.users
        );
    }
    Ok(())
}
