//! Strict query-string parsing: bounded length, no duplicated parameters.

use std::collections::HashMap;

/// Longest query string accepted on browser routes.
pub(crate) const MAX_QUERY_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    TooLong,
    Duplicate,
}

/// Parse `a=1&b=2`; refuse repeated names and oversized strings.
pub fn parse(raw: Option<&str>) -> Result<HashMap<String, String>, QueryError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(QueryError::Duplicate);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let q = parse(Some("a=1&b=x%20y")).unwrap();
        assert_eq!(q["b"], "x y");
        assert_eq!(parse(Some("state=a&state=b")), Err(QueryError::Duplicate));
        assert_eq!(parse(Some(&"a".repeat(5000))), Err(QueryError::TooLong));
        assert!(parse(None).unwrap().is_empty());
    }
}
