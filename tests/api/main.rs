//! Integration tests: real HTTP, real PostgreSQL, the fake Google.
//! One binary (faster to link); a fresh database per test.

mod architecture;
mod bad_input;
mod banners;
mod cache;
mod connections;
mod consent;
mod database;
mod demo;
mod disconnect;
mod doctor;
mod fake_google;
mod faults;
mod fuzz;
mod google_faults;
mod helpers;
mod hostile;
mod interrupted;
mod legacy;
mod lifecycle;
mod ops;
mod pages;
mod rate_limits;
mod report;
mod retention;
mod risc;
mod scopes_mac;
mod secrets;
mod security;
mod session;
mod shared_server;
mod status;
mod token;
mod wait;
mod webhooks;
