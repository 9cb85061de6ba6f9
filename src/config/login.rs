//! Where a person signs in to ro-being (`LOGIN_URL`) and the name of the
//! query parameter that carries the page to come back to afterwards
//! (`LOGIN_RETURN_PARAM`). The sign-in-needed page links there.

use url::Url;

use super::Checker;

keys! {
    LOGIN_URL,
    LOGIN_RETURN_PARAM,
}

/// The return parameter's name when `LOGIN_RETURN_PARAM` is unset.
pub const DEFAULT_RETURN_PARAM: &str = "return_to";

/// ro-being's sign-in page, as the sign-in-needed page links to it.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// `None`: the page says where to sign in, with no button.
    pub url: Option<Url>,
    /// The parameter added to `url` with the page to come back to.
    pub return_param: String,
}

impl LoginSettings {
    /// `LOGIN_URL` with `return_to` (an absolute URL on this service) as its
    /// return parameter; `None` without `LOGIN_URL`.
    pub fn link(&self, return_to: &Url) -> Option<Url> {
        let mut u = self.url.clone()?;
        u.query_pairs_mut()
            .append_pair(&self.return_param, return_to.as_str());
        Some(u)
    }
}

pub(super) fn check(c: &mut Checker) -> LoginSettings {
    let url = c.value(LOGIN_URL).and_then(|_| c.url(LOGIN_URL, None));
    if let Some(u) = &url {
        if u.fragment().is_some() {
            c.problem("LOGIN_URL must not have a fragment");
        }
    }
    let return_param = c
        .value(LOGIN_RETURN_PARAM)
        .unwrap_or_else(|| DEFAULT_RETURN_PARAM.to_string());
    let well_formed = return_param.len() <= 64
        && return_param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !well_formed {
        c.problem(
            "LOGIN_RETURN_PARAM must be a parameter name of at most 64 letters, digits, `_`, `-` or `.`",
        );
    }
    LoginSettings { url, return_param }
}
