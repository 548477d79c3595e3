//! What Oneo's benchmark harness shares with the test suite: checking that two answers to
//! the same question are equal, value by value ([`answer`]).

pub mod answer;
