//! Predictive scores from the lake, end to end: the synthetic data set is written through
//! the API's loader while ingest streams every change into a real Delta lake; each model
//! kind's features are read point in time from the history tables (`kinds`), and the
//! registry trains, deploys and scores through the REST API (`api`).

mod api;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod kinds;
