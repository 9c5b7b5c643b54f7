//! The native value codec with its pickle fallback.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::lent::{Lent, in_main_interpreter};
use crate::ffi::shared::{new_shared, shared_data};
use crate::ffi::{ExcKind, Gil, Kind, Obj, PyErr, PyResult};

/// A Python value as plain Rust data, free to move between threads.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An int beyond i64, as decimal text.
    BigInt(String),
    Float(f64),
    Str(String),
    /// A str holding lone surrogates, as UTF-8 with `surrogatepass`.
    StrRaw(Vec<u8>),
    Bytes(Vec<u8>),
    ByteArray(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    /// A `parpy.SharedBytes`: the same memory, seen by every interpreter.
    Shared(Arc<[u8]>),
    /// A large `bytes` or `str` of the main interpreter, read in place by
    /// the worker that decodes it (see [`Lender`]).
    Lent(Arc<Lent>),
    /// Anything else, as a pickle (protocol 5).
    Pickled(Vec<u8>),
}

impl Value {
    /// The bytes this value moves between interpreters, near enough: the
    /// payload of strings, bytes and pickles, 8 per scalar or pointer, and
    /// the sum over containers. A shared buffer moves no bytes, only its
    /// pointer. For `--stats` and `--timeline`.
    pub fn wire_size(&self) -> u64 {
        match self {
            Value::None | Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) | Value::Shared(_) => 8,
            Value::BigInt(s) | Value::Str(s) => s.len() as u64,
            Value::StrRaw(b) | Value::Bytes(b) | Value::ByteArray(b) | Value::Pickled(b) => {
                b.len() as u64
            }
            Value::Lent(l) => l.data().len() as u64,
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                v.iter().map(Value::wire_size).sum()
            }
            Value::Dict(kv) => kv.iter().map(|(k, v)| k.wire_size() + v.wire_size()).sum(),
        }
    }
}

/// Containers nested deeper than this are pickled as a whole, so encoding
/// never recurses without bound on the thread's stack.
const MAX_NATIVE_DEPTH: usize = 200;

/// Why a value could not be encoded: the Python exception raised, usually by pickle.
pub struct EncodeError(pub PyErr);

/// `bytes` and `str` (UTF-8) at least this long are lent, not copied, by a
/// [`Lender`]. Measured on `map` over distinct items (2 workers): at 4 KiB a
/// loan costs 0.8-0.95 µs per item against 4-5 µs for the copy; at 1 KiB
/// both cost about the same, so smaller values keep the plain copy.
pub const LEND_MIN: usize = 4 * 1024;

/// Encodes the arguments of one call (or of every item of one map) in the
/// main interpreter for its workers: a `bytes` or `str` of at least
/// [`LEND_MIN`] bytes is lent ([`Value::Lent`]) instead of copied, and an
/// object met several times is lent once. Elsewhere it encodes like [`encode`].
///
/// Only for values that go to workers inside a job: a loan keeps main's
/// object alive until the value is dropped and main releases it.
pub struct Lender {
    active: bool,
    seen: HashMap<usize, Arc<Lent>>,
}

impl Lender {
    pub fn new(gil: Gil<'_>) -> Lender {
        Lender {
            active: in_main_interpreter(gil),
            seen: HashMap::new(),
        }
    }

    /// Encodes `obj`, lending its large buffers.
    pub fn encode(&mut self, gil: Gil<'_>, obj: &Obj) -> Result<Value, EncodeError> {
        encode_at(gil, obj, 0, &mut Some(self)).map_err(EncodeError)
    }

    /// The loan of `obj` when it is large enough and may be lent.
    fn lend(&mut self, gil: Gil<'_>, obj: &Obj, len: usize) -> Option<Value> {
        if !self.active || len < LEND_MIN {
            return None;
        }
        // `obj` is alive for the whole encoding (the caller holds it), so its
        // address names it.
        if let Some(l) = self.seen.get(&obj.id()) {
            return Some(Value::Lent(Arc::clone(l)));
        }
        let l = Arc::new(Lent::new(gil, obj)?);
        self.seen.insert(obj.id(), Arc::clone(&l));
        Some(Value::Lent(l))
    }
}

/// Encodes `obj` for another interpreter.
pub fn encode(gil: Gil<'_>, obj: &Obj) -> Result<Value, EncodeError> {
    encode_at(gil, obj, 0, &mut None).map_err(EncodeError)
}

fn encode_at(
    gil: Gil<'_>,
    obj: &Obj,
    depth: usize,
    lender: &mut Option<&mut Lender>,
) -> PyResult<Value> {
    let kind = obj.kind();
    if depth >= MAX_NATIVE_DEPTH
        && matches!(
            kind,
            Kind::List | Kind::Tuple | Kind::Dict | Kind::Set | Kind::FrozenSet
        )
    {
        return pickle(gil, obj);
    }
    Ok(match kind {
        Kind::None => Value::None,
        Kind::Bool => Value::Bool(obj.is_true(gil)?),
        Kind::Int => match obj.as_i64(gil)? {
            Some(v) => Value::Int(v),
            None => Value::BigInt(obj.str(gil)?.as_str(gil)?.to_owned()),
        },
        Kind::Float => Value::Float(obj.as_f64(gil)?),
        Kind::Str => match obj.as_str(gil) {
            Ok(s) => match lender.as_mut().and_then(|l| l.lend(gil, obj, s.len())) {
                Some(v) => v,
                None => Value::Str(s.to_owned()),
            },
            Err(_) => Value::StrRaw(obj.str_bytes_lossless(gil)?),
        },
        Kind::Bytes => {
            let b = obj.as_bytes(gil)?;
            match lender.as_mut().and_then(|l| l.lend(gil, obj, b.len())) {
                Some(v) => v,
                None => Value::Bytes(b.to_vec()),
            }
        }
        // Mutable, so never lent: copied here, while main holds its GIL.
        Kind::ByteArray => Value::ByteArray(obj.bytearray_to_vec(gil)?),
        Kind::List => Value::List(encode_all(gil, obj.seq_items(), depth, lender)?),
        Kind::Tuple => Value::Tuple(encode_all(gil, obj.seq_items(), depth, lender)?),
        Kind::Dict => {
            let items = obj.dict_items();
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items {
                out.push((
                    encode_at(gil, &k, depth + 1, lender)?,
                    encode_at(gil, &v, depth + 1, lender)?,
                ));
            }
            Value::Dict(out)
        }
        Kind::Set => Value::Set(encode_all(gil, obj.iter_items(gil)?, depth, lender)?),
        Kind::FrozenSet => Value::FrozenSet(encode_all(gil, obj.iter_items(gil)?, depth, lender)?),
        Kind::Other => match shared_data(obj) {
            Some(data) => Value::Shared(data),
            None => pickle(gil, obj)?,
        },
    })
}

fn encode_all(
    gil: Gil<'_>,
    items: Vec<Obj>,
    depth: usize,
    lender: &mut Option<&mut Lender>,
) -> PyResult<Vec<Value>> {
    items
        .iter()
        .map(|i| encode_at(gil, i, depth + 1, lender))
        .collect()
}

/// Whether pickles are made by `parpy._dumps` instead of `pickle.dumps`:
/// when the main interpreter has no script that workers could import (the
/// REPL, a notebook, `-c`), classes and functions of its `__main__` cannot
/// be found by name there, so that pickler sends them by value (see
/// `_dumps` in the package). Process-wide: the workers pickle their results
/// back the same way. Set once, before the first pool starts.
static BY_VALUE: AtomicBool = AtomicBool::new(false);

/// Turns [`BY_VALUE`] on or off.
pub fn set_pickle_main_by_value(on: bool) {
    BY_VALUE.store(on, Ordering::SeqCst);
}

/// Whether [`BY_VALUE`] is on.
pub fn pickle_main_by_value() -> bool {
    BY_VALUE.load(Ordering::Relaxed)
}

fn pickle(gil: Gil<'_>, obj: &Obj) -> PyResult<Value> {
    if crate::observe::recording() {
        crate::observe::record::pickled(
            obj.type_name(gil),
            crate::runtime::current_worker().is_some(),
        );
    }
    let dumps = if pickle_main_by_value() {
        gil.import("parpy")?.getattr(gil, c"_dumps")?
    } else {
        gil.import("pickle")?.getattr(gil, c"dumps")?
    };
    let proto = gil.int(5)?;
    let data = dumps.call(gil, &[obj, &proto])?;
    Ok(Value::Pickled(data.as_bytes(gil)?.to_vec()))
}

/// Decodes a value into new objects of the current interpreter.
pub fn decode(gil: Gil<'_>, v: &Value) -> PyResult<Obj> {
    match v {
        Value::None => Ok(gil.none()),
        Value::Bool(b) => Ok(gil.bool(*b)),
        Value::Int(i) => gil.int(*i),
        Value::BigInt(s) => gil.int_from_str(s),
        Value::Float(f) => gil.float(*f),
        Value::Str(s) => gil.str(s),
        Value::StrRaw(b) => gil.str_lossless(b),
        Value::Bytes(b) => gil.bytes(b),
        Value::ByteArray(b) => gil.bytearray(b),
        Value::List(items) => gil.list(decode_all(gil, items)?),
        Value::Tuple(items) => gil.tuple(decode_all(gil, items)?),
        Value::Dict(items) => {
            let d = gil.dict()?;
            for (k, v) in items {
                d.dict_set(gil, &decode(gil, k)?, &decode(gil, v)?)?;
            }
            Ok(d)
        }
        Value::Set(items) => gil.set(decode_all(gil, items)?, false),
        Value::FrozenSet(items) => gil.set(decode_all(gil, items)?, true),
        Value::Shared(data) => {
            let tp = gil.import("parpy")?.getattr(gil, c"SharedBytes")?;
            new_shared(gil, &tp, Arc::clone(data))
        }
        Value::Lent(l) => l.to_object(gil),
        Value::Pickled(data) => {
            let loads = gil.import("pickle")?.getattr(gil, c"loads")?;
            loads.call(gil, &[&gil.bytes(data)?])
        }
    }
}

fn decode_all(gil: Gil<'_>, items: &[Value]) -> PyResult<Vec<Obj>> {
    items.iter().map(|i| decode(gil, i)).collect()
}

impl EncodeError {
    /// A `TypeError` saying that `what` (e.g. "argument 2") of type
    /// `type_name` cannot travel, chained from the underlying error.
    /// A `BaseException` that is no `Exception` (`SystemExit`,
    /// `KeyboardInterrupt` raised while pickling) is returned as it is.
    pub fn into_type_error(self, gil: Gil<'_>, what: &str, type_name: &str) -> PyErr {
        let cause = self.0;
        if !is_exception(gil, cause.value()) {
            return cause;
        }
        let why = cause
            .value()
            .str(gil)
            .ok()
            .and_then(|s| s.as_str(gil).ok().map(str::to_owned))
            .unwrap_or_default();
        let cause_type = cause.value().type_name(gil);
        let err = PyErr::new(
            gil,
            ExcKind::TypeError,
            &format!(
                "parpy: {what} of type '{type_name}' cannot be sent between interpreters \
                 ({cause_type}: {why}); pass plain data or an object that pickle can handle"
            ),
        );
        let _ = err.value().setattr(gil, c"__cause__", cause.value());
        err
    }
}

impl EncodeError {
    /// The error itself, as `concurrent.futures` raises a result's pickling
    /// error: same type and message, with a note (an `Exception`'s only)
    /// saying that `what` of type `type_name` could not be sent.
    pub fn into_original(self, gil: Gil<'_>, what: &str, type_name: &str) -> PyErr {
        let cause = self.0;
        if is_exception(gil, cause.value()) {
            let note = format!(
                "parpy: {what} of type '{type_name}' could not be sent between interpreters"
            );
            if let Ok(add) = cause.value().getattr(gil, c"add_note")
                && let Ok(note) = gil.str(&note)
            {
                let _ = add.call(gil, &[&note]);
            }
        }
        cause
    }
}

/// Whether `exc` is an `Exception` (not only a `BaseException`).
fn is_exception(gil: Gil<'_>, exc: &Obj) -> bool {
    let check = || -> PyResult<bool> {
        let builtins = gil.import("builtins")?;
        let class = builtins.getattr(gil, c"Exception")?;
        builtins
            .getattr(gil, c"isinstance")?
            .call(gil, &[exc, &class])?
            .is_true(gil)
    };
    check().unwrap_or(true)
}
