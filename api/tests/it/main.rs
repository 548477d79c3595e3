//! Integration tests against the real PostgreSQL (ONEO_TEST_PG, default 127.0.0.1:5432).

mod auth;
mod bulk;
mod concurrency;
mod fields;
mod harness;
mod records;
mod workspace;
