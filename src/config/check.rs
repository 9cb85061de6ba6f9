//! What the sections' checks share: reading a key's value and the common
//! kinds of setting (required text, numbers in a range, flags, URLs, lists),
//! each reporting its problem and going on, so every problem is collected.

use std::ops::RangeInclusive;
use std::time::Duration;

use url::Url;

use super::{ConfigError, Raw};

pub(super) struct Checker {
    raw: Raw,
    problems: Vec<String>,
}

impl Checker {
    pub(super) fn new(raw: Raw) -> Self {
        Self {
            raw,
            problems: Vec::new(),
        }
    }

    /// All the problems at once, if there are any.
    pub(super) fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    pub(super) fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The value of `key`, trimmed; `None` when it is unset or blank.
    pub(super) fn value(&self, key: &str) -> Option<String> {
        self.raw
            .get(key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The comma-separated items of `key`, trimmed, blanks left out.
    pub(super) fn list(&self, key: &str) -> Vec<String> {
        self.value(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub(super) fn required(&mut self, key: &str) -> Option<String> {
        let v = self.value(key);
        if v.is_none() {
            self.problem(format!("{key} is not set"));
        }
        v
    }

    /// A whole number within `range` (`default` when unset); `unit` names it
    /// in the problem report.
    pub(super) fn number(
        &mut self,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
        unit: &str,
    ) -> u64 {
        match self.value(key) {
            None => default,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    self.problem(format!(
                        "{key} must be a whole number of {unit} from {} to {}",
                        range.start(),
                        range.end()
                    ));
                    default
                }
            },
        }
    }

    pub(super) fn seconds(
        &mut self,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Duration {
        Duration::from_secs(self.number(key, default, range, "seconds"))
    }

    pub(super) fn millis(
        &mut self,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Duration {
        Duration::from_millis(self.number(key, default, range, "milliseconds"))
    }

    /// Requests per minute; 0 turns the limit off.
    pub(super) fn per_minute(&mut self, key: &str, default: u32) -> u32 {
        self.number(
            key,
            default.into(),
            0..=u32::MAX.into(),
            "requests per minute (0 turns it off)",
        ) as u32
    }

    pub(super) fn flag(&mut self, key: &str) -> bool {
        match self.value(key).as_deref() {
            None | Some("false") | Some("0") | Some("no") => false,
            Some("true") | Some("1") | Some("yes") => true,
            Some(_) => {
                self.problem(format!("{key} must be true or false"));
                false
            }
        }
    }

    /// An http(s) URL with a host; `default` when unset, else it must be set.
    pub(super) fn url(&mut self, key: &str, default: Option<&str>) -> Option<Url> {
        let Some(v) = self.value(key).or(default.map(str::to_string)) else {
            self.problem(format!("{key} is not set"));
            return None;
        };
        match Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problem(format!("{key} must be an http(s) URL with a host"));
                None
            }
            Err(e) => {
                self.problem(format!("{key} is not a valid URL ({e})"));
                None
            }
        }
    }
}
