//! Waiting on a condition with a deadline, instead of sleeping and hoping.
//!
//! A test that sleeps a fixed time and then asserts a state fails on a slow
//! machine and wastes time on a fast one. These helpers poll the condition
//! itself and panic, naming what they waited for, when the deadline passes.
//! Deadlines are generous: they bound a hang, they are not speed targets.

use std::fmt::Debug;
use std::time::Duration;

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// Poll `check` until it returns `Ok`, and return its value; panic naming
/// `what` and the last `Err` (the state seen) if `deadline` passes first.
pub async fn wait_for<T, S: Debug>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let seen = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}; last seen: {seen:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll `check` until it returns true; panic naming `what` if `deadline`
/// passes first.
pub async fn wait_until(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    wait_for(what, deadline, async || {
        if check().await {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await
}
