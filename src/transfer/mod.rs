//! Moving values between interpreters.
//!
//! No Python object ever crosses interpreters. A value is encoded into a
//! plain Rust [`Value`] in the sending interpreter, travels over a channel,
//! and is decoded into fresh objects in the receiving one. Built-in data
//! (None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set,
//! frozenset) is copied natively; anything else is pickled. Large bytes and str in a
//! call's arguments are lent by the main interpreter instead of copied
//! ([`Lender`]): the worker copies straight from main's object.

mod value;

pub use value::{
    EncodeError, LEND_MIN, Lender, Value, decode, encode, pickle_main_by_value,
    set_pickle_main_by_value,
};
