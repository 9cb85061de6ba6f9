//! Logging setup: `RUST_LOG` filters, `LOG_FORMAT` picks json or pretty.
//! Logs go to stderr: stdout is for the data a command prints (`doctor
//! --json`, `report --format csv`, the demo's banner).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Install the global subscriber (once; later calls do nothing).
pub(crate) fn init(format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    // Colours only on a terminal: never escape codes in log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Where sqlx logs the notices PostgreSQL sends (at INFO for a `NOTICE`).
const NOTICE_TARGET: &str = "sqlx::postgres::notice";

/// The filter from `RUST_LOG` (default `info`). PostgreSQL's notices ("trigger
/// … does not exist, skipping" at every start) are chatter, not news: sqlx
/// logs them at INFO, so they are shown only when `RUST_LOG` asks for debug
/// (or names their target).
fn filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    // Only where INFO is the most verbose level asked for: at DEBUG the
    // notices are wanted, at WARN or ERROR the filter drops them already.
    let info = filter.max_level_hint() == Some(tracing::level_filters::LevelFilter::INFO);
    if !info || spec.contains(NOTICE_TARGET) {
        filter
    } else {
        filter.add_directive(
            format!("{NOTICE_TARGET}=warn")
                .parse()
                .expect("a static directive parses"),
        )
    }
}

/// Log format before settings are read (from `LOG_FORMAT` directly).
pub(crate) fn format_from_env() -> LogFormat {
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Pretty,
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every app
/// instance in the process, e.g. in tests).
pub(crate) fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a host program): then
            // our handle still renders, just without the global macros' data.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shows_notices(rust_log: Option<&str>) -> bool {
        !filter(rust_log)
            .to_string()
            .contains(&format!("{NOTICE_TARGET}=warn"))
    }

    #[test]
    fn postgres_notices_only_at_debug() {
        assert!(!shows_notices(None));
        assert!(!shows_notices(Some("info")));
        assert!(!shows_notices(Some("warn,auth_server=info")));
        assert!(shows_notices(Some("debug")));
        assert!(shows_notices(Some("info,sqlx=debug")));
        assert!(shows_notices(Some("info,sqlx::postgres::notice=info")));
    }
}
