//! Google OAuth scopes: short name ↔ full URL, normalisation, set difference and
//! the Korean + English label of every scope the Gmail Passport knows.
//!
//! This is the one place that knows what a scope string means. Everything that
//! compares scopes (the callback, the status API, the token API, the report)
//! goes through [`ScopeSet`].

use std::collections::BTreeSet;
use std::fmt;

/// Prefix of every Google API scope URL.
pub const GOOGLE_SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";

/// What the product knows about a scope: its short name and how to explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeInfo {
    /// Short name, e.g. `calendar.events`.
    pub short: &'static str,
    /// Label on the consent screen and the item page, Korean.
    pub label_ko: &'static str,
    /// Same label, English.
    pub label_en: &'static str,
    /// What the assistant cannot do without it, Korean.
    pub missing_ko: &'static str,
    /// Same, English.
    pub missing_en: &'static str,
}

/// Every scope the Gmail Passport may request, in the order they are shown.
pub const KNOWN_SCOPES: &[ScopeInfo] = &[
    ScopeInfo {
        short: "gmail.send",
        label_ko: "메일 보내기",
        label_en: "Send email",
        missing_ko: "메일 보내기 권한이 없어 메일을 보낼 수 없습니다",
        missing_en: "Without it the assistant cannot send email",
    },
    ScopeInfo {
        short: "gmail.readonly",
        label_ko: "메일 읽기",
        label_en: "Read email",
        missing_ko: "메일 읽기 권한이 없어 받은 메일을 확인할 수 없습니다",
        missing_en: "Without it the assistant cannot read your mail",
    },
    ScopeInfo {
        short: "gmail.modify",
        label_ko: "메일 정리 (라벨·보관)",
        label_en: "Organise email (labels, archive)",
        missing_ko: "메일 정리 권한이 없어 라벨을 붙이거나 보관할 수 없습니다",
        missing_en: "Without it the assistant cannot label or archive mail",
    },
    ScopeInfo {
        short: "userinfo.email",
        label_ko: "이메일 주소 확인",
        label_en: "See your email address",
        missing_ko: "이메일 주소를 확인할 수 없어 어떤 계정인지 표시할 수 없습니다",
        missing_en: "Without it we cannot tell which account is connected",
    },
    ScopeInfo {
        short: "userinfo.profile",
        label_ko: "기본 프로필 확인",
        label_en: "See your basic profile",
        missing_ko: "프로필을 확인할 수 없어 이름을 표시할 수 없습니다",
        missing_en: "Without it we cannot show your name",
    },
    ScopeInfo {
        short: "calendar",
        label_ko: "캘린더 보기·관리",
        label_en: "See and manage your calendars",
        missing_ko: "캘린더 권한이 없어 일정을 확인하거나 관리할 수 없습니다",
        missing_en: "Without it the assistant cannot see or manage your calendars",
    },
    ScopeInfo {
        short: "calendar.events",
        label_ko: "캘린더 일정 보기·편집",
        label_en: "View and edit calendar events",
        missing_ko: "캘린더 권한이 없어 일정을 등록할 수 없습니다",
        missing_en: "Without it the assistant cannot add events to your calendar",
    },
];

/// Default scopes of the Gmail Passport: every known scope.
pub fn default_gmail_scopes() -> ScopeSet {
    KNOWN_SCOPES
        .iter()
        .map(|s| format!("{GOOGLE_SCOPE_PREFIX}{}", s.short))
        .collect()
}

/// A scope string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope `{0}`")]
    Unknown(String),
    #[error("empty scope list")]
    Empty,
}

/// Normalise one scope string as Google or a caller may spell it.
///
/// * aliases Google uses in token responses: `email` → `userinfo.email`,
///   `profile` → `userinfo.profile`, and the legacy `https://www.googleapis.com/auth/plus.me`
///   style stays as given;
/// * short names (`calendar.events`) → full URL;
/// * full URLs are kept (trailing whitespace trimmed);
/// * `openid` stays `openid`.
pub(crate) fn normalize(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    let full = match s {
        "openid" => "openid".to_string(),
        "email" => format!("{GOOGLE_SCOPE_PREFIX}userinfo.email"),
        "profile" => format!("{GOOGLE_SCOPE_PREFIX}userinfo.profile"),
        _ if s.starts_with("https://") || s.starts_with("http://") => s.to_string(),
        _ => format!("{GOOGLE_SCOPE_PREFIX}{s}"),
    };
    Some(full)
}

/// The short name of a full scope URL (`…/auth/calendar` → `calendar`), or the
/// input itself when it is not a Google API scope URL.
pub(crate) fn short_name(full: &str) -> &str {
    full.strip_prefix(GOOGLE_SCOPE_PREFIX).unwrap_or(full)
}

/// What we know about a (normalised) scope, if anything.
pub(crate) fn info(full: &str) -> Option<&'static ScopeInfo> {
    let short = short_name(full);
    KNOWN_SCOPES.iter().find(|s| s.short == short)
}

fn is_valid_short_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// A set of normalised scope URLs, always sorted and unique.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Parse a list Google sent (token response `scope`, tokeninfo): space
    /// separated, anything accepted, normalised.
    pub fn from_google(list: &str) -> Self {
        list.split_whitespace().filter_map(normalize).collect()
    }

    /// Parse a list a person or a skill wrote (setting, token API request): space
    /// or comma separated, short names or full URLs; only scopes this service
    /// knows (or full URLs) are accepted.
    pub fn parse_known<'a, I>(items: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut out = BTreeSet::new();
        for item in items {
            for part in item.split(|c: char| c == ',' || c.is_whitespace()) {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let full = if part.starts_with("https://") {
                    if info(part).is_none() && !part.starts_with(GOOGLE_SCOPE_PREFIX) {
                        return Err(ScopeError::Unknown(part.to_string()));
                    }
                    part.to_string()
                } else {
                    let full = normalize(part).ok_or(ScopeError::Empty)?;
                    if info(&full).is_none() && full != "openid" {
                        return Err(ScopeError::Unknown(part.to_string()));
                    }
                    full
                };
                if let Some(short) = full.strip_prefix(GOOGLE_SCOPE_PREFIX) {
                    if !is_valid_short_name(short) {
                        return Err(ScopeError::Unknown(part.to_string()));
                    }
                }
                out.insert(full);
            }
        }
        if out.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(Self(out))
    }

    /// Read what a `gmail_token.scopes` value holds: normally a JSON array of
    /// scope URLs; the old service sometimes stored one space-separated string.
    pub fn from_json(value: Option<&serde_json::Value>) -> Self {
        match value {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str())
                .flat_map(|s| s.split_whitespace())
                .filter_map(normalize)
                .collect(),
            Some(serde_json::Value::String(s)) => Self::from_google(s),
            _ => Self::new(),
        }
    }

    /// The stored form: a sorted JSON array of full URLs.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.0
                .iter()
                .cloned()
                .map(serde_json::Value::String)
                .collect(),
        )
    }

    pub(crate) fn contains(&self, scope: &str) -> bool {
        normalize(scope).is_some_and(|s| self.0.contains(&s))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Scopes in `self` that `granted` lacks.
    pub(crate) fn missing_from(&self, granted: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.difference(&granted.0).cloned().collect())
    }

    pub(crate) fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }

    pub(crate) fn is_superset(&self, other: &ScopeSet) -> bool {
        self.0.is_superset(&other.0)
    }

    /// Short names, in the product's display order (known scopes first, in
    /// [`KNOWN_SCOPES`] order, then any others sorted).
    pub fn short_names(&self) -> Vec<String> {
        let mut known: Vec<(usize, String)> = Vec::new();
        let mut other: Vec<String> = Vec::new();
        for s in &self.0 {
            let short = short_name(s);
            match KNOWN_SCOPES.iter().position(|k| k.short == short) {
                Some(i) => known.push((i, short.to_string())),
                None => other.push(short.to_string()),
            }
        }
        known.sort();
        known.into_iter().map(|(_, s)| s).chain(other).collect()
    }

    /// Space-separated full URLs, as the `scope` request parameter wants.
    pub fn to_request_param(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

impl FromIterator<String> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = String>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.short_names()).finish()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_short_names_urls_and_aliases() {
        let s = ScopeSet::from_google(
            "openid email https://www.googleapis.com/auth/userinfo.profile https://www.googleapis.com/auth/calendar",
        );
        assert_eq!(
            s.short_names(),
            vec!["userinfo.email", "userinfo.profile", "calendar", "openid"]
        );
    }

    #[test]
    fn defaults_are_the_seven_scopes() {
        let d = default_gmail_scopes();
        assert_eq!(d.len(), 7);
        assert!(d.contains("calendar.events"));
        assert!(d.contains("https://www.googleapis.com/auth/gmail.send"));
    }

    #[test]
    fn missing_is_a_set_difference() {
        let required = default_gmail_scopes();
        let granted = ScopeSet::parse_known(["gmail.send gmail.readonly,gmail.modify"]).unwrap();
        let missing = required.missing_from(&granted);
        assert_eq!(
            missing.short_names(),
            vec![
                "userinfo.email",
                "userinfo.profile",
                "calendar",
                "calendar.events"
            ]
        );
        assert!(required.missing_from(&required).is_empty());
    }

    #[test]
    fn parse_known_rejects_unknown_and_empty() {
        assert_eq!(
            ScopeSet::parse_known(["calendar.evnts"]),
            Err(ScopeError::Unknown("calendar.evnts".into()))
        );
        assert_eq!(ScopeSet::parse_known([" , "]), Err(ScopeError::Empty));
        assert!(ScopeSet::parse_known(["https://evil.example/auth/x"]).is_err());
        assert!(ScopeSet::parse_known(["https://www.googleapis.com/auth/drive"]).is_ok());
    }

    #[test]
    fn reads_legacy_json_shapes() {
        let arr = serde_json::json!([
            "https://www.googleapis.com/auth/gmail.send",
            "gmail.readonly"
        ]);
        assert_eq!(
            ScopeSet::from_json(Some(&arr)).short_names(),
            vec!["gmail.send", "gmail.readonly"]
        );
        let s = serde_json::json!("https://www.googleapis.com/auth/gmail.send https://www.googleapis.com/auth/gmail.modify");
        assert_eq!(ScopeSet::from_json(Some(&s)).len(), 2);
        assert!(ScopeSet::from_json(None).is_empty());
    }

    #[test]
    fn every_known_scope_has_labels() {
        for s in KNOWN_SCOPES {
            assert!(!s.label_ko.is_empty() && !s.label_en.is_empty() && !s.missing_ko.is_empty());
        }
    }
}
