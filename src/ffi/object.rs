//! Owned references, the GIL token and errors.

use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

use pyo3_ffi as ffi;

/// Proof that this thread is attached to an interpreter and holds its GIL.
///
/// `!Send` and `!Sync`: it stays on the thread that is attached.
#[derive(Clone, Copy)]
pub struct Gil<'py> {
    _not_send: PhantomData<(&'py (), *mut ())>,
}

/// An owned strong reference to a Python object of the interpreter this thread
/// is attached to.
pub struct Obj(NonNull<ffi::PyObject>);

/// A raised Python exception (the exception instance).
pub struct PyErr(Obj);

/// Result of a fallible Python operation.
pub type PyResult<T> = Result<T, PyErr>;

/// The exact built-in type of an object, as the value codec needs it.
/// Subclasses of built-ins are `Other`, so they keep their class when pickled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    ByteArray,
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    Other,
}

/// Standard exception classes that parpy raises itself.
#[derive(Debug, Clone, Copy)]
pub enum ExcKind {
    TypeError,
    ValueError,
    RuntimeError,
    ImportError,
}

impl<'py> Gil<'py> {
    /// # Safety
    /// The calling thread must be attached to an interpreter for `'py`.
    pub(crate) unsafe fn assume() -> Self {
        Gil {
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this thread detached from its interpreter, so that other
    /// threads (and interpreters whose work needs this GIL) can run.
    pub fn allow_threads<T, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        // SAFETY: the token proves this thread is attached; the thread state is
        // restored before returning, and `f` being `Send` means it holds no `Obj`.
        let saved = unsafe { ffi::PyEval_SaveThread() };
        let guard = Restore(saved);
        let out = f();
        drop(guard);
        out
    }

    /// Runs pending signal handlers (main thread of the main interpreter only
    /// does anything); returns the `KeyboardInterrupt` they raised, if any.
    pub fn check_signals(&self) -> PyResult<()> {
        // SAFETY: attached (token).
        if unsafe { ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(*self));
        }
        Ok(())
    }

    pub fn none(&self) -> Obj {
        // SAFETY: attached; Py_None is immortal, the new reference is ours.
        unsafe { Obj::from_borrowed(ffi::Py_None()) }
    }

    pub fn bool(&self, v: bool) -> Obj {
        // SAFETY: attached; PyBool_FromLong never fails.
        unsafe { Obj::from_owned(ffi::PyBool_FromLong(v as _)).expect("bool") }
    }

    pub fn int(&self, v: i64) -> PyResult<Obj> {
        // SAFETY: attached.
        unsafe { Obj::result(*self, ffi::PyLong_FromLongLong(v)) }
    }

    /// Parses an integer from its decimal text (used for ints beyond i64).
    pub fn int_from_str(&self, text: &str) -> PyResult<Obj> {
        let c = self.cstring(text)?;
        // SAFETY: attached; `c` is NUL-terminated and outlives the call.
        unsafe {
            Obj::result(
                *self,
                ffi::PyLong_FromString(c.as_ptr(), std::ptr::null_mut(), 10),
            )
        }
    }

    pub fn float(&self, v: f64) -> PyResult<Obj> {
        // SAFETY: attached.
        unsafe { Obj::result(*self, ffi::PyFloat_FromDouble(v)) }
    }

    pub fn str(&self, v: &str) -> PyResult<Obj> {
        // SAFETY: attached; pointer and length describe valid UTF-8.
        unsafe {
            Obj::result(
                *self,
                ffi::PyUnicode_FromStringAndSize(v.as_ptr().cast(), v.len() as ffi::Py_ssize_t),
            )
        }
    }

    /// A `str` from UTF-8 that may carry lone surrogates (`surrogatepass`).
    pub fn str_lossless(&self, v: &[u8]) -> PyResult<Obj> {
        // SAFETY: attached; pointer and length describe `v`.
        unsafe {
            Obj::result(
                *self,
                ffi::PyUnicode_DecodeUTF8(
                    v.as_ptr().cast(),
                    v.len() as ffi::Py_ssize_t,
                    c"surrogatepass".as_ptr(),
                ),
            )
        }
    }

    pub fn bytes(&self, v: &[u8]) -> PyResult<Obj> {
        // SAFETY: attached; pointer and length describe `v`.
        unsafe {
            Obj::result(
                *self,
                ffi::PyBytes_FromStringAndSize(v.as_ptr().cast(), v.len() as ffi::Py_ssize_t),
            )
        }
    }

    pub fn bytearray(&self, v: &[u8]) -> PyResult<Obj> {
        // SAFETY: attached; pointer and length describe `v`.
        unsafe {
            Obj::result(
                *self,
                ffi::PyByteArray_FromStringAndSize(v.as_ptr().cast(), v.len() as ffi::Py_ssize_t),
            )
        }
    }

    pub fn tuple(&self, items: Vec<Obj>) -> PyResult<Obj> {
        // SAFETY: attached; PyTuple_SET_ITEM steals each reference into a fresh tuple.
        unsafe {
            let t = Obj::result(*self, ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
            for (i, item) in items.into_iter().enumerate() {
                ffi::PyTuple_SET_ITEM(t.ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(t)
        }
    }

    pub fn list(&self, items: Vec<Obj>) -> PyResult<Obj> {
        // SAFETY: attached; PyList_SET_ITEM steals each reference into a fresh list.
        unsafe {
            let l = Obj::result(*self, ffi::PyList_New(items.len() as ffi::Py_ssize_t))?;
            for (i, item) in items.into_iter().enumerate() {
                ffi::PyList_SET_ITEM(l.ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(l)
        }
    }

    pub fn dict(&self) -> PyResult<Obj> {
        // SAFETY: attached.
        unsafe { Obj::result(*self, ffi::PyDict_New()) }
    }

    pub fn set(&self, items: Vec<Obj>, frozen: bool) -> PyResult<Obj> {
        // SAFETY: attached; PySet_Add borrows `item`, which stays alive.
        unsafe {
            let s = if frozen {
                ffi::PyFrozenSet_New(std::ptr::null_mut())
            } else {
                ffi::PySet_New(std::ptr::null_mut())
            };
            let s = Obj::result(*self, s)?;
            for item in items {
                if ffi::PySet_Add(s.ptr(), item.ptr()) < 0 {
                    return Err(PyErr::fetch(*self));
                }
            }
            Ok(s)
        }
    }

    pub fn import(&self, name: &str) -> PyResult<Obj> {
        let c = self.cstring(name)?;
        // SAFETY: attached; `c` outlives the call.
        unsafe { Obj::result(*self, ffi::PyImport_ImportModule(c.as_ptr())) }
    }

    /// Executes a module body given as `marshal` data of a code object
    /// (made by the same CPython version) in the dict `globals`.
    pub fn exec_marshalled(&self, data: &[u8], globals: &Obj) -> PyResult<()> {
        // SAFETY: attached (token); `data` is read during the call only;
        // `globals` is a dict we hold.
        unsafe {
            let code = Obj::result(
                *self,
                ffi::PyMarshal_ReadObjectFromString(
                    data.as_ptr().cast(),
                    data.len() as ffi::Py_ssize_t,
                ),
            )?;
            Obj::result(
                *self,
                ffi::PyEval_EvalCode(code.ptr(), globals.ptr(), globals.ptr()),
            )?;
        }
        Ok(())
    }

    fn cstring(&self, s: &str) -> PyResult<CString> {
        CString::new(s)
            .map_err(|_| PyErr::new(*self, ExcKind::ValueError, "embedded NUL character"))
    }
}

/// Re-attaches the saved thread state when dropped (also on unwind).
struct Restore(*mut ffi::PyThreadState);

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the state this thread detached in `allow_threads`.
        unsafe { ffi::PyEval_RestoreThread(self.0) }
    }
}

impl Obj {
    /// # Safety
    /// `p` is a new (owned) reference or NULL; this thread is attached.
    pub(crate) unsafe fn from_owned(p: *mut ffi::PyObject) -> Option<Obj> {
        NonNull::new(p).map(Obj)
    }

    /// # Safety
    /// `p` is a valid borrowed reference; this thread is attached.
    pub(crate) unsafe fn from_borrowed(p: *mut ffi::PyObject) -> Obj {
        // SAFETY: caller guarantees `p` is valid and attached.
        unsafe { ffi::Py_INCREF(p) };
        Obj(NonNull::new(p).expect("borrowed NULL"))
    }

    /// # Safety
    /// `p` is a new reference or NULL with an exception set; this thread is attached.
    pub(crate) unsafe fn result(gil: Gil<'_>, p: *mut ffi::PyObject) -> PyResult<Obj> {
        // SAFETY: forwarded from the caller.
        unsafe { Obj::from_owned(p) }.ok_or_else(|| PyErr::fetch(gil))
    }

    pub(crate) fn ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    pub(crate) fn into_ptr(self) -> *mut ffi::PyObject {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The exact built-in kind of this object.
    pub fn kind(&self) -> Kind {
        // SAFETY: reading the type pointer of a live object; comparisons only.
        unsafe {
            let t = ffi::Py_TYPE(self.ptr());
            if self.ptr() == ffi::Py_None() {
                Kind::None
            } else if t == &raw mut ffi::PyBool_Type {
                Kind::Bool
            } else if t == &raw mut ffi::PyLong_Type {
                Kind::Int
            } else if t == &raw mut ffi::PyFloat_Type {
                Kind::Float
            } else if t == &raw mut ffi::PyUnicode_Type {
                Kind::Str
            } else if t == &raw mut ffi::PyBytes_Type {
                Kind::Bytes
            } else if t == &raw mut ffi::PyByteArray_Type {
                Kind::ByteArray
            } else if t == &raw mut ffi::PyList_Type {
                Kind::List
            } else if t == &raw mut ffi::PyTuple_Type {
                Kind::Tuple
            } else if t == &raw mut ffi::PyDict_Type {
                Kind::Dict
            } else if t == &raw mut ffi::PySet_Type {
                Kind::Set
            } else if t == &raw mut ffi::PyFrozenSet_Type {
                Kind::FrozenSet
            } else {
                Kind::Other
            }
        }
    }

    /// Whether this is exactly a `range`.
    pub fn is_range(&self) -> bool {
        // SAFETY: reading the type pointer of a live object; comparison only.
        unsafe { ffi::Py_TYPE(self.ptr()) == &raw mut ffi::PyRange_Type }
    }

    /// The object's address, as Python's `id()`: unique among live objects.
    pub fn id(&self) -> usize {
        self.ptr() as usize
    }

    /// Whether this is a `KeyboardInterrupt` (or a subclass) instance.
    pub fn is_keyboard_interrupt(&self, _gil: Gil<'_>) -> bool {
        // SAFETY: attached (token); the static exception type is valid in
        // every interpreter, and the call only reads types.
        unsafe { ffi::PyErr_GivenExceptionMatches(self.ptr(), ffi::PyExc_KeyboardInterrupt) != 0 }
    }

    pub fn is_none(&self) -> bool {
        // SAFETY: pointer comparison only.
        self.ptr() == unsafe { ffi::Py_None() }
    }

    pub fn is_true(&self, gil: Gil<'_>) -> PyResult<bool> {
        // SAFETY: attached (token).
        match unsafe { ffi::PyObject_IsTrue(self.ptr()) } {
            -1 => Err(PyErr::fetch(gil)),
            v => Ok(v == 1),
        }
    }

    /// The value of an exact `int`, or `None` when it does not fit in i64.
    pub fn as_i64(&self, gil: Gil<'_>) -> PyResult<Option<i64>> {
        let mut overflow: c_int = 0;
        // SAFETY: attached (token); `overflow` is a valid out-pointer.
        let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(self.ptr(), &mut overflow) };
        if overflow != 0 {
            return Ok(None);
        }
        // SAFETY: attached.
        if v == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
            return Err(PyErr::fetch(gil));
        }
        Ok(Some(v))
    }

    pub fn as_f64(&self, gil: Gil<'_>) -> PyResult<f64> {
        // SAFETY: attached (token).
        let v = unsafe { ffi::PyFloat_AsDouble(self.ptr()) };
        // SAFETY: attached.
        if v == -1.0 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
            return Err(PyErr::fetch(gil));
        }
        Ok(v)
    }

    /// The UTF-8 text of a `str`, borrowed from the object.
    /// Fails on lone surrogates (use [`Obj::str_bytes_lossless`]).
    pub fn as_str(&self, gil: Gil<'_>) -> PyResult<&str> {
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: attached; the buffer lives as long as the object, which `&self` keeps.
        unsafe {
            let p = ffi::PyUnicode_AsUTF8AndSize(self.ptr(), &mut len);
            if p.is_null() {
                return Err(PyErr::fetch(gil));
            }
            let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len as usize);
            Ok(std::str::from_utf8_unchecked(bytes))
        }
    }

    /// UTF-8 of a `str`, with lone surrogates kept (`surrogatepass`).
    pub fn str_bytes_lossless(&self, gil: Gil<'_>) -> PyResult<Vec<u8>> {
        // SAFETY: attached (token).
        let b = unsafe {
            Obj::result(
                gil,
                ffi::PyUnicode_AsEncodedString(
                    self.ptr(),
                    c"utf-8".as_ptr(),
                    c"surrogatepass".as_ptr(),
                ),
            )?
        };
        Ok(b.as_bytes(gil)?.to_vec())
    }

    /// The contents of a `bytes`, borrowed from the object.
    pub fn as_bytes(&self, gil: Gil<'_>) -> PyResult<&[u8]> {
        let mut p = std::ptr::null_mut();
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: attached; the buffer lives as long as the object (immutable bytes).
        unsafe {
            if ffi::PyBytes_AsStringAndSize(self.ptr(), &mut p, &mut len) < 0 {
                return Err(PyErr::fetch(gil));
            }
            Ok(std::slice::from_raw_parts(p.cast::<u8>(), len as usize))
        }
    }

    /// A copy of the contents of a `bytearray` (copied at once: Python code
    /// may resize it later).
    pub fn bytearray_to_vec(&self, gil: Gil<'_>) -> PyResult<Vec<u8>> {
        // SAFETY: attached; the buffer is read while we hold the GIL and run
        // no Python code, so nothing can resize or free it meanwhile.
        unsafe {
            let p = ffi::PyByteArray_AsString(self.ptr());
            if p.is_null() {
                return Err(PyErr::fetch(gil));
            }
            let len = ffi::PyByteArray_Size(self.ptr());
            Ok(std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec())
        }
    }

    /// Items of an exact list or tuple (new references).
    pub fn seq_items(&self) -> Vec<Obj> {
        // SAFETY: caller checked the kind; borrowed items are increfed immediately.
        unsafe {
            match self.kind() {
                Kind::Tuple => {
                    let n = ffi::PyTuple_GET_SIZE(self.ptr());
                    (0..n)
                        .map(|i| Obj::from_borrowed(ffi::PyTuple_GET_ITEM(self.ptr(), i)))
                        .collect()
                }
                Kind::List => {
                    let n = ffi::PyList_GET_SIZE(self.ptr());
                    (0..n)
                        .map(|i| Obj::from_borrowed(ffi::PyList_GET_ITEM(self.ptr(), i)))
                        .collect()
                }
                _ => Vec::new(),
            }
        }
    }

    /// Key/value pairs of a dict (new references), in insertion order.
    pub fn dict_items(&self) -> Vec<(Obj, Obj)> {
        let mut out = Vec::new();
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k = std::ptr::null_mut();
        let mut v = std::ptr::null_mut();
        // SAFETY: attached; PyDict_Next yields borrowed refs that we incref at once.
        unsafe {
            while ffi::PyDict_Next(self.ptr(), &mut pos, &mut k, &mut v) != 0 {
                out.push((Obj::from_borrowed(k), Obj::from_borrowed(v)));
            }
        }
        out
    }

    /// All items of any iterable.
    pub fn iter_items(&self, gil: Gil<'_>) -> PyResult<Vec<Obj>> {
        // SAFETY: attached; PyIter_Next returns new references.
        unsafe {
            let it = Obj::result(gil, ffi::PyObject_GetIter(self.ptr()))?;
            let mut out = Vec::new();
            while let Some(item) = Obj::from_owned(ffi::PyIter_Next(it.ptr())) {
                out.push(item);
            }
            if !ffi::PyErr_Occurred().is_null() {
                return Err(PyErr::fetch(gil));
            }
            Ok(out)
        }
    }

    pub fn dict_set(&self, gil: Gil<'_>, key: &Obj, value: &Obj) -> PyResult<()> {
        // SAFETY: attached; the dict borrows and increfs both.
        if unsafe { ffi::PyDict_SetItem(self.ptr(), key.ptr(), value.ptr()) } < 0 {
            return Err(PyErr::fetch(gil));
        }
        Ok(())
    }

    pub fn getattr(&self, gil: Gil<'_>, name: &CStr) -> PyResult<Obj> {
        // SAFETY: attached (token).
        unsafe { Obj::result(gil, ffi::PyObject_GetAttrString(self.ptr(), name.as_ptr())) }
    }

    /// `getattr(self, name)` with `name` a str made once, for hot paths
    /// (the `&CStr` form builds and interns a new str on every call).
    pub fn getattr_str(&self, gil: Gil<'_>, name: &Obj) -> PyResult<Obj> {
        // SAFETY: attached (token); `name` is a live str of this interpreter.
        unsafe { Obj::result(gil, ffi::PyObject_GetAttr(self.ptr(), name.ptr())) }
    }

    pub fn setattr(&self, gil: Gil<'_>, name: &CStr, value: &Obj) -> PyResult<()> {
        // SAFETY: attached (token).
        if unsafe { ffi::PyObject_SetAttrString(self.ptr(), name.as_ptr(), value.ptr()) } < 0 {
            return Err(PyErr::fetch(gil));
        }
        Ok(())
    }

    /// `self(*args)`.
    pub fn call(&self, gil: Gil<'_>, args: &[&Obj]) -> PyResult<Obj> {
        let ptrs: Vec<*mut ffi::PyObject> = args.iter().map(|a| a.ptr()).collect();
        // SAFETY: attached; `ptrs` holds borrowed refs kept alive by `args`.
        unsafe {
            Obj::result(
                gil,
                ffi::PyObject_Vectorcall(
                    self.ptr(),
                    ptrs.as_ptr(),
                    ptrs.len(),
                    std::ptr::null_mut(),
                ),
            )
        }
    }

    /// `self(*args, **kwargs)` with `args` a tuple and `kwargs` a dict or None.
    pub fn call_tuple(&self, gil: Gil<'_>, args: &Obj, kwargs: Option<&Obj>) -> PyResult<Obj> {
        let kw = kwargs.map_or(std::ptr::null_mut(), |k| k.ptr());
        // SAFETY: attached; `args` is a tuple and `kw` a dict or NULL.
        unsafe { Obj::result(gil, ffi::PyObject_Call(self.ptr(), args.ptr(), kw)) }
    }

    pub fn str(&self, gil: Gil<'_>) -> PyResult<Obj> {
        // SAFETY: attached (token).
        unsafe { Obj::result(gil, ffi::PyObject_Str(self.ptr())) }
    }

    /// `type(self).__qualname__`, for messages.
    pub fn type_name(&self, gil: Gil<'_>) -> String {
        // SAFETY: attached; the type object is alive while `self` is.
        let t = unsafe { Obj::from_borrowed(ffi::Py_TYPE(self.ptr()).cast()) };
        t.getattr(gil, c"__qualname__")
            .ok()
            .and_then(|n| n.as_str(gil).ok().map(str::to_owned))
            .unwrap_or_else(|| "object".into())
    }
}

impl Clone for Obj {
    fn clone(&self) -> Obj {
        // SAFETY: an `Obj` exists only on an attached thread (it is !Send).
        unsafe { Obj::from_borrowed(self.ptr()) }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        // SAFETY: an `Obj` is !Send and cannot be used inside `allow_threads`,
        // so this thread is attached to the object's interpreter.
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

impl PyErr {
    /// Takes the exception currently set on this thread.
    pub fn fetch(gil: Gil<'_>) -> PyErr {
        // SAFETY: attached (token).
        let p = unsafe { ffi::PyErr_GetRaisedException() };
        // SAFETY: new reference or NULL.
        match unsafe { Obj::from_owned(p) } {
            Some(o) => PyErr(o),
            None => PyErr::new(
                gil,
                ExcKind::RuntimeError,
                "error return without exception set",
            ),
        }
    }

    /// A new exception of a standard class with a message.
    pub fn new(gil: Gil<'_>, kind: ExcKind, msg: &str) -> PyErr {
        // SAFETY: reading the addresses of CPython's static exception types.
        let t = unsafe {
            match kind {
                ExcKind::TypeError => ffi::PyExc_TypeError,
                ExcKind::ValueError => ffi::PyExc_ValueError,
                ExcKind::RuntimeError => ffi::PyExc_RuntimeError,
                ExcKind::ImportError => ffi::PyExc_ImportError,
            }
        };
        let text = gil.str(msg).unwrap_or_else(|_| gil.none());
        // SAFETY: attached; `t` is a valid exception type.
        let class = unsafe { Obj::from_borrowed(t) };
        match class.call(gil, &[&text]) {
            Ok(exc) => PyErr(exc),
            Err(e) => e,
        }
    }

    /// The exception instance.
    pub fn value(&self) -> &Obj {
        &self.0
    }

    /// Sets this exception as the one being raised on this thread.
    pub fn restore(self, _gil: Gil<'_>) {
        // SAFETY: attached (token); PyErr_SetRaisedException steals the reference.
        unsafe { ffi::PyErr_SetRaisedException(self.0.into_ptr()) }
    }

    /// Prints the exception and its traceback to `sys.stderr` (never exits,
    /// even for `SystemExit`).
    pub fn print(self, _gil: Gil<'_>) {
        // SAFETY: attached (token); the instance is borrowed for the call.
        unsafe { ffi::PyErr_DisplayException(self.0.ptr()) }
    }
}
