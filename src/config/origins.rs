//! Where this service is (`PUBLIC_BASE_URL`) and where it may send users
//! back to: the allowed return origins and the inventory page.

use url::{Origin, Url};

use super::Checker;

keys! {
    PUBLIC_BASE_URL,
    ALLOWED_RETURN_ORIGINS,
    INVENTORY_URL,
}

pub(super) struct Origins {
    pub public_base_url: Url,
    /// Always includes `PUBLIC_BASE_URL`'s.
    pub allowed_return_origins: Vec<Origin>,
    pub inventory_url: Url,
}

pub(super) fn check(c: &mut Checker) -> Option<Origins> {
    let public_base_url = c.url(PUBLIC_BASE_URL, None);
    if let Some(u) = &public_base_url {
        if u.query().is_some() || u.fragment().is_some() {
            c.problem("PUBLIC_BASE_URL must not have a query or fragment");
        }
    }

    let mut allowed_return_origins = Vec::new();
    if let Some(u) = &public_base_url {
        allowed_return_origins.push(u.origin());
    }
    for item in c.list(ALLOWED_RETURN_ORIGINS) {
        match Url::parse(&item) {
            Ok(u) if is_origin(&u) => {
                if !allowed_return_origins.contains(&u.origin()) {
                    allowed_return_origins.push(u.origin());
                }
            }
            _ => c.problem(format!(
                "ALLOWED_RETURN_ORIGINS: `{item}` is not an origin such as https://ro-being.com"
            )),
        }
    }

    let inventory_url = inventory_url(c, public_base_url.as_ref());
    if let Some(inv) = &inventory_url {
        if !allowed_return_origins.contains(&inv.origin()) {
            c.problem("INVENTORY_URL must be on PUBLIC_BASE_URL or one of ALLOWED_RETURN_ORIGINS");
        }
    }

    Some(Origins {
        public_base_url: public_base_url?,
        allowed_return_origins,
        inventory_url: inventory_url?,
    })
}

/// An http(s) origin, written as a URL with no credentials, path or query.
fn is_origin(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https")
        && u.host().is_some()
        && u.username().is_empty()
        && u.password().is_none()
        && (u.path() == "/" || u.path().is_empty())
        && u.query().is_none()
}

/// `INVENTORY_URL`, by default the service's own inventory page. Without a
/// usable `PUBLIC_BASE_URL` (already reported) there is no default.
fn inventory_url(c: &mut Checker, public_base_url: Option<&Url>) -> Option<Url> {
    if c.value(INVENTORY_URL).is_some() {
        return c.url(INVENTORY_URL, None);
    }
    let base = public_base_url?.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/passport/gmail")).ok()
}
