//! Integration tests against the real PostgreSQL (ONEO_TEST_PG, default 127.0.0.1:5432).

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used)]

mod auth;
mod bulk;
mod concurrency;
mod fields;
mod generate;
mod harness;
mod records;
mod workflows;
mod workspace;
