//! A circuit breaker for Google's token endpoint, per instance: after
//! `threshold` failures in a row calls stop for `open_for`; then one probe at
//! a time tests recovery, and its success closes the breaker at once.
//!
//! (The `failsafe` crate's half-open state admits every caller; here only one
//! probe may run, so that a recovering Google is not hit by the whole queue.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a caller turned away by a running probe is told to wait.
const PROBE_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Open time is over: the next caller probes.
    HalfOpen {
        probing: bool,
    },
}

pub(crate) struct Breaker {
    state: Arc<Mutex<State>>,
    threshold: u32,
    open_for: Duration,
}

/// Permission to call; report how it went with [`Permit::success`] or
/// [`Permit::failure`]. Dropped without a report (the caller was cancelled),
/// a probe lets the next caller probe.
pub(crate) struct Permit {
    state: Arc<Mutex<State>>,
    probe: bool,
    reported: bool,
}

impl Breaker {
    /// `threshold` 0 turns the breaker off.
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::Closed { failures: 0 })),
            threshold,
            open_for,
        }
    }

    /// A permit to call Google, or how long to wait before asking again.
    pub(crate) fn admit(&self) -> Result<Permit, Duration> {
        let mut state = lock(&self.state);
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if until > Instant::now() => return Err(until - Instant::now()),
            State::Open { .. } | State::HalfOpen { probing: false } => true,
            State::HalfOpen { probing: true } => return Err(PROBE_RETRY),
        };
        if probe {
            *state = State::HalfOpen { probing: true };
        }
        Ok(Permit {
            state: self.state.clone(),
            probe,
            reported: false,
        })
    }

    #[cfg(test)]
    fn is_closed(&self) -> bool {
        matches!(*lock(&self.state), State::Closed { .. })
    }

    fn fail(&self, permit: &mut Permit) {
        permit.reported = true;
        let mut state = lock(&self.state);
        let failures = match *state {
            State::Closed { failures } if !permit.probe => failures + 1,
            _ => self.threshold,
        };
        *state = if self.threshold > 0 && failures >= self.threshold {
            metrics::counter!("passport_google_breaker_opened_total").increment(1);
            State::Open {
                until: Instant::now() + self.open_for,
            }
        } else {
            State::Closed { failures }
        };
    }
}

impl Permit {
    /// Google answered (whatever it said): the breaker closes.
    pub(crate) fn success(mut self) {
        self.reported = true;
        *lock(&self.state) = State::Closed { failures: 0 };
    }

    /// Google was unavailable.
    pub(crate) fn failure(mut self, breaker: &Breaker) {
        breaker.fail(&mut self);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = lock(&self.state);
            if *state == (State::HalfOpen { probing: true }) {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_one_probe_closes_it() {
        let b = Breaker::new(2, Duration::from_millis(20));
        b.admit().unwrap().failure(&b);
        assert!(b.is_closed());
        b.admit().unwrap().failure(&b);
        assert!(b.admit().is_err(), "open");
        std::thread::sleep(Duration::from_millis(25));
        let probe = b.admit().expect("the probe");
        assert_eq!(b.admit().err(), Some(PROBE_RETRY), "one probe at a time");
        probe.success();
        assert!(b.is_closed());
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_dropped_one_frees_the_slot() {
        let b = Breaker::new(1, Duration::from_millis(10));
        b.admit().unwrap().failure(&b);
        std::thread::sleep(Duration::from_millis(15));
        b.admit().unwrap().failure(&b);
        assert!(b.admit().is_err(), "open again after a failed probe");
        std::thread::sleep(Duration::from_millis(15));
        drop(b.admit().unwrap());
        assert!(
            b.admit().is_ok(),
            "an abandoned probe does not block others"
        );
    }

    #[test]
    fn a_success_resets_the_count_and_threshold_zero_never_opens() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.admit().unwrap().failure(&b);
        b.admit().unwrap().success();
        b.admit().unwrap().failure(&b);
        assert!(b.is_closed());
        let off = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.admit().unwrap().failure(&off);
        }
        assert!(off.admit().is_ok());
    }
}
