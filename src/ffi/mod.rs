//! The only place that talks to CPython's C API.
//!
//! Everything outside this module works with the safe types defined here:
//!
//! * [`Gil`] is a token proving that the current thread is attached to an
//!   interpreter (holds that interpreter's GIL). Only this module creates one.
//! * [`Obj`] is an owned strong reference. It is `!Send`, so it never leaves the
//!   thread (and therefore the interpreter) that created it; [`Gil::allow_threads`]
//!   takes a `Send` closure, so no `Obj` can be touched while detached.
//! * [`PyErr`] is a raised Python exception, fetched from or restored to the
//!   thread state.
//!
//! Each sub-interpreter is created and ended on one OS thread by
//! [`interp::run_in_new_interpreter`]; objects of one interpreter never reach
//! another, because only plain Rust values cross threads.

pub mod compat;
pub mod embed;
pub mod interp;
pub mod lent;
pub mod module;
mod object;
pub mod os;
pub mod shared;

pub use object::{ExcKind, Gil, Kind, Obj, PyErr, PyResult};
