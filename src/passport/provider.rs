//! Provider definitions. Today there is one: the Gmail Passport.

use crate::scopes::ScopeSet;

/// A passport provider: its name in URLs and the scopes it needs.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Path segment: `/passport/{name}`.
    pub name: &'static str,
    pub title_ko: &'static str,
    pub title_en: &'static str,
    /// The scopes every connection of this provider should have.
    pub scopes: ScopeSet,
}

/// The providers this service runs.
#[derive(Debug, Clone)]
pub struct Providers {
    gmail: Provider,
}

impl Providers {
    pub fn new(gmail_scopes: ScopeSet) -> Self {
        Self {
            gmail: Provider {
                name: "gmail",
                title_ko: "Gmail 패스포트",
                title_en: "Gmail Passport",
                scopes: gmail_scopes,
            },
        }
    }

    /// The provider named in a URL, if there is one by that name.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        (name == self.gmail.name).then_some(&self.gmail)
    }

    pub fn gmail(&self) -> &Provider {
        &self.gmail
    }
}
