//! The native value codec with its pickle fallback.

use std::sync::Arc;

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
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    /// A `parpy.SharedBytes`: the same memory, seen by every interpreter.
    Shared(Arc<[u8]>),
    /// Anything else, as a pickle (protocol 5).
    Pickled(Vec<u8>),
}

/// Containers nested deeper than this are pickled as a whole, so encoding
/// never recurses without bound on the thread's stack.
const MAX_NATIVE_DEPTH: usize = 200;

/// Why a value could not be encoded: the Python exception raised, usually by pickle.
pub struct EncodeError(pub PyErr);

/// Encodes `obj` for another interpreter.
pub fn encode(gil: Gil<'_>, obj: &Obj) -> Result<Value, EncodeError> {
    encode_at(gil, obj, 0).map_err(EncodeError)
}

fn encode_at(gil: Gil<'_>, obj: &Obj, depth: usize) -> PyResult<Value> {
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
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::StrRaw(obj.str_bytes_lossless(gil)?),
        },
        Kind::Bytes => Value::Bytes(obj.as_bytes(gil)?.to_vec()),
        Kind::List => Value::List(encode_all(gil, obj.seq_items(), depth)?),
        Kind::Tuple => Value::Tuple(encode_all(gil, obj.seq_items(), depth)?),
        Kind::Dict => {
            let items = obj.dict_items();
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items {
                out.push((
                    encode_at(gil, &k, depth + 1)?,
                    encode_at(gil, &v, depth + 1)?,
                ));
            }
            Value::Dict(out)
        }
        Kind::Set => Value::Set(encode_all(gil, obj.iter_items(gil)?, depth)?),
        Kind::FrozenSet => Value::FrozenSet(encode_all(gil, obj.iter_items(gil)?, depth)?),
        Kind::Other => match shared_data(obj) {
            Some(data) => Value::Shared(data),
            None => pickle(gil, obj)?,
        },
    })
}

fn encode_all(gil: Gil<'_>, items: Vec<Obj>, depth: usize) -> PyResult<Vec<Value>> {
    items.iter().map(|i| encode_at(gil, i, depth + 1)).collect()
}

fn pickle(gil: Gil<'_>, obj: &Obj) -> PyResult<Value> {
    let dumps = gil.import("pickle")?.getattr(gil, c"dumps")?;
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
    pub fn into_type_error(self, gil: Gil<'_>, what: &str, type_name: &str) -> PyErr {
        let cause = self.0;
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
