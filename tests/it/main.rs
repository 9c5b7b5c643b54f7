//! The integration tests: one binary, run against the built `parpy` and the
//! CPython it was built with. See `common` for the helpers.

mod check;
mod cluster;
mod common;
mod compat;
mod contract;
mod finder;
mod launcher;
mod notebook;
mod observe;
mod packaging;
mod parallel;
mod resilience;
mod static_link;
mod typing;
mod wheel;
