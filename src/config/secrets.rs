//! Secrets that are real. A value copied from `.env.example` stops the start,
//! and so does a secret that is obviously weak. The problem names the setting
//! and the rule it breaks, never the value.
//!
//! **Placeholders.** A value is a placeholder when it contains one of
//! [`MARKERS`] (`change-me`, `replace-with`, … in any case), or when it is, or
//! is one item of, a value that `.env.example` gives to one of
//! [`PLACEHOLDER_KEYS`] (the file is built into the binary, so the two cannot
//! drift apart; `config::tests` checks the file against the rule as well).
//!
//! **Randomness** is estimated, as an upper bound, by
//! `bits = effective length × log2(alphabet)`:
//!
//! - the *alphabet* of a text secret is the sum of the character classes it
//!   uses: lower-case letters 26, upper-case letters 26, digits 10, anything
//!   else 33; a value of digits only counts 10, one of hexadecimal digits only
//!   (not mixing `a-f` with `A-F`) counts 16. A decoded key's alphabet is the
//!   256 byte values;
//! - the *effective length* is the smallest of: the length of the shortest
//!   pattern the whole value repeats (`abcabc…` counts 3, `aaaa` counts 1);
//!   one more than the shortest repeating pattern of the steps between its
//!   characters (`0123456789` counts 2, `acegi…` 2, bytes `00 01 02 …` 2);
//!   and its length when every run of [`MIN_RUN`] or more characters that
//!   repeat or count up or down by one (`aaaaa`, `12345`, `edcba`) counts 2.
//!
//! A random value reaches the estimate; a value made by hand usually falls
//! short of it only when it is short, narrow or regular. The estimate cannot
//! tell a memorable phrase from a random one: make the service's own secrets
//! with `auth-server init`.

use std::sync::LazyLock;

/// The least randomness accepted for the secrets this service makes itself
/// (internal API keys, the active token encryption key, the webhook secret).
pub(super) const MIN_BITS: f64 = 128.0;

/// The shortest run of repeated or counting characters that counts as two.
/// Five: a random 32-digit hexadecimal key (exactly 128 bits) holds one by
/// chance about once in 1,200 and is then refused; `auth-server init` makes
/// 256-bit values, far from the bound.
const MIN_RUN: usize = 5;

/// Case-insensitive markers of a placeholder.
pub(super) const MARKERS: &[&str] = &[
    "change-me",
    "change_me",
    "changeme",
    "replace-with",
    "replace_with",
    "replace-me",
    "replace_me",
    "replaceme",
];

/// The settings whose `.env.example` values are placeholders, refused as
/// values of any of them.
pub(super) const PLACEHOLDER_KEYS: &[&str] = &[
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "SESSION_JWT_SECRET",
    "INTERNAL_API_KEYS",
    "TOKEN_ENCRYPTION_KEYS",
    "WEBHOOK_SECRET",
];

/// `.env.example` as built into the binary.
const EXAMPLE: &str = include_str!("../../.env.example");

/// The values `.env.example` gives (set or commented out) to
/// [`PLACEHOLDER_KEYS`], item by item; for `TOKEN_ENCRYPTION_KEYS` also the
/// key after its id.
static EXAMPLE_VALUES: LazyLock<Vec<String>> = LazyLock::new(|| example_values(EXAMPLE));

/// The values a `.env`-style text gives to [`PLACEHOLDER_KEYS`] (also in
/// commented-out lines), item by item.
pub(super) fn example_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in example_settings(text) {
        if !PLACEHOLDER_KEYS.contains(&key.as_str()) {
            continue;
        }
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(item.to_string());
            if let Some((_, key)) = item.split_once(':') {
                out.push(key.trim().to_string());
            }
        }
    }
    out
}

/// Every `KEY=value` line of a `.env`-style text, commented out or not.
pub(super) fn example_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('#').trim_start();
            let (key, value) = line.split_once('=')?;
            let is_key = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            is_key.then(|| (key.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Whether `value` is a placeholder (see the module's notes).
pub(super) fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
        || EXAMPLE_VALUES.iter().any(|e| e.as_str() == value.trim())
}

/// Who makes a secret, which says how to replace a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Maker {
    /// This service: `auth-server init` prints fresh ones.
    Us,
    /// ro-being's session secret: only checked, never made here.
    RoBeing,
    /// The OAuth client from Google Cloud Console.
    Google,
}

impl Maker {
    fn fix(self) -> &'static str {
        match self {
            Self::Us => "make a real one with `auth-server init`",
            Self::RoBeing => "set the secret ro-being signs its session JWTs with",
            Self::Google => "set the OAuth client from Google Cloud Console",
        }
    }
}

/// Why a secret is refused. It never carries the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Weakness {
    /// Copied from `.env.example`.
    Placeholder,
    /// One character (or byte) repeated.
    OneSymbol,
    /// Shorter than `min` bytes.
    TooShort { min: usize },
    /// Fewer than [`MIN_BITS`] bits by the module's estimate.
    LittleRandomness,
    /// A key that decodes to printable text: a phrase, not random bytes.
    Text,
}

impl Weakness {
    /// The rule broken, and what to do, for `subject` (a setting, or one
    /// item of it).
    pub(super) fn problem(self, subject: &str, maker: Maker) -> String {
        let fix = maker.fix();
        match self {
            Self::Placeholder => {
                format!("{subject} is a placeholder copied from .env.example; {fix}")
            }
            Self::OneSymbol => {
                format!("{subject} is a single character (or byte) repeated; {fix}")
            }
            Self::TooShort { min } => {
                format!("{subject} must be at least {min} bytes long; {fix}")
            }
            Self::LittleRandomness => format!(
                "{subject} has fewer than {MIN_BITS} bits of randomness (estimated as length × log2 of the alphabet of its character classes, counting a repeated pattern once); {fix}"
            ),
            Self::Text => format!(
                "{subject} decodes to printable text, not 32 random bytes; {fix}"
            ),
        }
    }
}

/// A secret another party makes (ro-being's session secret, Google's client
/// secret): a placeholder, one repeated character or too short is refused.
pub(super) fn shared_secret(value: &str, min_len: usize) -> Option<Weakness> {
    if is_placeholder(value) {
        Some(Weakness::Placeholder)
    } else if is_one_symbol(value.as_bytes()) {
        Some(Weakness::OneSymbol)
    } else if value.len() < min_len {
        Some(Weakness::TooShort { min: min_len })
    } else {
        None
    }
}

/// A secret this service makes (an internal API key, the webhook secret):
/// also refused under [`MIN_BITS`] bits.
pub(super) fn own_secret(value: &str, min_len: usize) -> Option<Weakness> {
    shared_secret(value, min_len)
        .or_else(|| (text_bits(value) < MIN_BITS).then_some(Weakness::LittleRandomness))
}

/// A decoded AES key: one byte repeated, printable text, or under
/// [`MIN_BITS`] bits.
pub(super) fn key_bytes(key: &[u8]) -> Option<Weakness> {
    if is_one_symbol(key) {
        Some(Weakness::OneSymbol)
    } else if key.iter().all(|b| (0x20..=0x7e).contains(b)) {
        Some(Weakness::Text)
    } else if bytes_bits(key) < MIN_BITS {
        Some(Weakness::LittleRandomness)
    } else {
        None
    }
}

fn is_one_symbol(bytes: &[u8]) -> bool {
    bytes.windows(2).all(|w| w[0] == w[1])
}

/// The estimated randomness of a text secret, in bits.
pub(super) fn text_bits(value: &str) -> f64 {
    let chars: Vec<char> = value.chars().collect();
    let symbols: Vec<i64> = chars.iter().map(|&c| i64::from(u32::from(c))).collect();
    effective_len(&symbols) as f64 * (alphabet(&chars) as f64).log2()
}

/// The estimated randomness of a key's bytes, in bits.
pub(super) fn bytes_bits(bytes: &[u8]) -> f64 {
    let symbols: Vec<i64> = bytes.iter().map(|&b| i64::from(b)).collect();
    effective_len(&symbols) as f64 * 8.0
}

/// The size of the alphabet spanned by the character classes `chars` uses.
fn alphabet(chars: &[char]) -> u32 {
    if chars.iter().all(char::is_ascii_digit) {
        return 10;
    }
    let hex_lower = chars.iter().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    let hex_upper = chars.iter().all(|c| matches!(c, '0'..='9' | 'A'..='F'));
    if hex_lower || hex_upper {
        return 16;
    }
    let uses = |f: fn(&char) -> bool| chars.iter().any(f);
    let mut size = 0;
    if uses(char::is_ascii_lowercase) {
        size += 26;
    }
    if uses(char::is_ascii_uppercase) {
        size += 26;
    }
    if uses(char::is_ascii_digit) {
        size += 10;
    }
    if uses(|c| !c.is_ascii_alphanumeric()) {
        size += 33;
    }
    size.max(1)
}

/// The smallest of: the shortest pattern the symbols repeat, one more than
/// the shortest pattern their steps repeat, and their number with runs
/// collapsed.
fn effective_len(symbols: &[i64]) -> usize {
    if symbols.is_empty() {
        return 0;
    }
    let steps: Vec<i64> = symbols.windows(2).map(|w| w[1] - w[0]).collect();
    period(symbols)
        .min(period(&steps) + 1)
        .min(collapsed_len(symbols))
}

/// The number of symbols when each run of [`MIN_RUN`] or more that repeat or
/// count by one (the same step of -1, 0 or 1) counts as two.
fn collapsed_len(symbols: &[i64]) -> usize {
    let (mut count, mut i) = (0, 0);
    while i < symbols.len() {
        let mut end = i + 1;
        if let Some(step) = symbols.get(end).map(|next| next - symbols[i]) {
            while step.abs() <= 1
                && symbols
                    .get(end)
                    .is_some_and(|&s| s - symbols[end - 1] == step)
            {
                end += 1;
            }
        }
        if end - i >= MIN_RUN {
            count += 2;
            i = end;
        } else {
            count += 1;
            i += 1;
        }
    }
    count
}

/// The length of the shortest prefix that, repeated, makes `s` (the last
/// repetition may be cut short); 0 for an empty `s`.
fn period<T: PartialEq>(s: &[T]) -> usize {
    (1..=s.len())
        .find(|&p| s.iter().skip(p).zip(s).all(|(a, b)| a == b))
        .unwrap_or(0)
}
