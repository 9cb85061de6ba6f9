//! The full consent flow of issue 6 (`bench/run.sh`, scenario 6): for each new
//! user, `GET /passport/gmail/connect` (302 to the fake Google, flow cookie) →
//! `POST` the fake's consent form (`account`, every requested scope ticked,
//! `decision=allow`, plus the authorize URL's parameters) → `GET` the callback
//! with the flow cookie → 302 with `result=connected`. Each flow creates a
//! `gmail_token` row, so the table grows while it runs.
//!
//! `--concurrency` flows run at once (closed loop). Prints one
//! `FLOW_WINDOW …` line per `--window` completed flows and a `FLOWS …`
//! summary; exits non-zero if any flow failed.
//!
//! Like the storm, this is a scripted multi-step client, not a fixed-request
//! load test, so it is not driven by wrk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// The auth-server base URL.
    #[arg(long)]
    url: String,
    /// HS256 secret of the session JWTs.
    #[arg(long, env = "SESSION_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Number of the first new user (ids are Uuid::from_u128(n)).
    #[arg(long)]
    first: u64,
    #[arg(long, default_value_t = 2000)]
    flows: u64,
    #[arg(long, default_value_t = 16)]
    concurrency: u64,
    /// Report throughput per this many completed flows.
    #[arg(long, default_value_t = 500)]
    window: u64,
    /// The fake Google account that consents.
    #[arg(long, default_value = "jisoo@example.com")]
    account: String,
}

fn location(resp: &reqwest::Response) -> anyhow::Result<url::Url> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or_else(|| anyhow::anyhow!("{} without Location", resp.status()))?
        .to_str()?;
    Ok(resp.url().join(loc)?)
}

async fn one_flow(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    account: &str,
) -> anyhow::Result<()> {
    let bearer = format!("Bearer {jwt}");
    // 1. connect: 302 to Google with the flow cookie.
    let r = http
        .get(format!("{base}/passport/gmail/connect"))
        .header("authorization", &bearer)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 302,
        "connect answered {}",
        r.status()
    );
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("passport_flow_"))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("connect set no flow cookie"))?
        .to_string();
    let authorize = location(&r)?;

    // 2. the fake's consent form: every requested scope ticked, allow.
    let mut form: Vec<(String, String)> = authorize
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let scopes: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for s in scopes {
        form.push(("granted".into(), s));
    }
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), "allow".into()));
    let mut action = authorize.clone();
    action.set_query(None);
    let body = serde_urlencoded::to_string(&form)?;
    let r = http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 302,
        "consent answered {}",
        r.status()
    );
    let callback = location(&r)?;

    // 3. the callback, from the same browser (flow cookie) and session.
    let r = http
        .get(callback)
        .header("authorization", &bearer)
        .header("cookie", cookie)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 302,
        "callback answered {}",
        r.status()
    );
    let done = location(&r)?;
    let result = done
        .query_pairs()
        .find(|(k, _)| k == "result")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    anyhow::ensure!(
        result == "connected",
        "flow ended with result={result} ({done})"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = Arc::new(args.url.trim_end_matches('/').to_string());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(Instant, Duration, Result<(), String>)>();
    let start = Instant::now();
    for _ in 0..args.concurrency.min(args.flows).max(1) {
        let (http, base, next, tx) = (http.clone(), base.clone(), next.clone(), tx.clone());
        let (secret, account, flows, first) = (
            args.jwt_secret.clone(),
            args.account.clone(),
            args.flows,
            args.first,
        );
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= flows {
                    break;
                }
                let user = Uuid::from_u128(u128::from(first + i));
                let jwt = auth_server::demo::session_jwt(
                    secret.as_bytes(),
                    user,
                    chrono::Duration::hours(1),
                );
                let t = Instant::now();
                let r = one_flow(&http, &base, &jwt, &account)
                    .await
                    .map_err(|e| e.to_string());
                let _ = tx.send((Instant::now(), t.elapsed(), r));
            }
        });
    }
    drop(tx);

    let window = args.window.max(1);
    let mut done = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    let mut window_start = start;
    let mut lat: Vec<Duration> = Vec::new();
    let mut windows: Vec<f64> = Vec::new();
    while let Some((at, l, r)) = rx.recv().await {
        done += 1;
        lat.push(l);
        if let Err(e) = r {
            errors += 1;
            first_error.get_or_insert(e);
        }
        if done % window == 0 || done == args.flows {
            let secs = (at - window_start).as_secs_f64();
            let count = lat.len();
            lat.sort();
            let rate = count as f64 / secs.max(1e-9);
            println!(
                "FLOW_WINDOW from={} to={} flows_per_s={:.1} p50_ms={:.1} p99_ms={:.1}",
                done - count as u64,
                done,
                rate,
                lat[count / 2].as_secs_f64() * 1000.0,
                lat[((count * 99).div_ceil(100)).clamp(1, count) - 1].as_secs_f64() * 1000.0,
            );
            windows.push(rate);
            lat.clear();
            window_start = at;
        }
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "FLOWS flows={done} errors={errors} seconds={total:.2} flows_per_s={:.1} first_window_per_s={:.1} last_window_per_s={:.1}",
        done as f64 / total.max(1e-9),
        windows.first().copied().unwrap_or(0.0),
        windows.last().copied().unwrap_or(0.0),
    );
    if let Some(e) = first_error {
        anyhow::bail!("{errors} flows failed; first: {e}");
    }
    Ok(())
}
