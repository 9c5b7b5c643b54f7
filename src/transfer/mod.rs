//! Moving values between interpreters.
//!
//! No Python object ever crosses interpreters. A value is encoded into a
//! plain Rust [`Value`] in the sending interpreter, travels over a channel,
//! and is decoded into fresh objects in the receiving one. Built-in data
//! (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset)
//! is copied natively; anything else is pickled.

mod value;

pub use value::{EncodeError, Value, decode, encode};
