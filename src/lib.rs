//! auth-server: the Gmail Passport service of ro-being.
//!
//! The modules and the direction of their arrows are drawn in
//! `docs/architecture.md`: `http` → `passport` (the domain) → `store` (all
//! SQL) / `google` (all HTTP to Google) / `notify` (webhook HTTP) /
//! `crypto`; `startup` is the composition root; `main.rs` only parses the
//! command line.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod fake_google;
pub mod google;
pub mod http;
pub mod notify;
pub mod passport;
pub mod scopes;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Settings;
