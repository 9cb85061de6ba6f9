//! Integration tests: real HTTP, real PostgreSQL, the fake Google.
//! One binary (faster to link); a fresh database per test.

mod architecture;
mod bad_input;
mod cache;
mod connections;
mod consent;
mod demo;
mod disconnect;
mod doctor;
mod fake_google;
mod faults;
mod fuzz;
mod helpers;
mod hostile;
mod legacy;
mod lifecycle;
mod ops;
mod report;
mod security;
mod session;
mod status;
mod token;
mod wait;
mod webhooks;
