//! Provider definitions. Today there is one: the Gmail Passport.

use crate::scopes::ScopeSet;

/// A passport provider: its name in URLs and the scopes it needs.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    /// Path segment: `/passport/{name}`.
    pub name: &'static str,
    /// The scopes every connection of this provider should have.
    pub scopes: ScopeSet,
}

/// The providers this service runs.
#[derive(Debug, Clone)]
pub(crate) struct Providers {
    gmail: Provider,
}

impl Providers {
    pub(crate) fn new(gmail_scopes: ScopeSet) -> Self {
        Self {
            gmail: Provider {
                name: "gmail",
                scopes: gmail_scopes,
            },
        }
    }

    /// The provider named in a URL, if there is one by that name.
    pub(crate) fn get(&self, name: &str) -> Option<&Provider> {
        (name == self.gmail.name).then_some(&self.gmail)
    }

    pub(crate) fn gmail(&self) -> &Provider {
        &self.gmail
    }
}
