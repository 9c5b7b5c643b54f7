//! `parpy.SharedBytes`: read-only bytes that every interpreter sees without a copy.
//!
//! The data lives in an `Arc<[u8]>` outside all interpreters. Each
//! interpreter has its own heap type (made when it imports `parpy`), whose
//! instances hold one strong count of the Arc and export it through the
//! buffer protocol (`memoryview(s)`, `bytes(s)`, `len(s)`, `s[i:j]` via memoryview).
//! Sending one to a worker copies a pointer, not the data.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use pyo3_ffi as ffi;

use super::object::{Gil, Obj, PyErr, PyResult};

#[repr(C)]
struct SharedObject {
    ob_base: ffi::PyObject,
    data: *const u8,
    len: usize,
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called by CPython with the last reference to one of our
    // instances, in the interpreter that owns it; `data/len` came from
    // `Arc::into_raw` in `new_shared`, and heap-type instances own a
    // reference to their type.
    unsafe {
        let o = obj.cast::<SharedObject>();
        if !(*o).data.is_null() {
            drop(Arc::from_raw(ptr::slice_from_raw_parts(
                (*o).data,
                (*o).len,
            )));
        }
        let tp = ffi::Py_TYPE(obj);
        ffi::PyObject_Free(obj.cast());
        ffi::Py_DECREF(tp.cast());
    }
}

unsafe extern "C" fn getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> c_int {
    // SAFETY: CPython passes one of our instances and a view to fill; the data
    // stays alive while the view holds its reference to `obj`.
    unsafe {
        let o = obj.cast::<SharedObject>();
        ffi::PyBuffer_FillInfo(
            view,
            obj,
            (*o).data as *mut c_void,
            (*o).len as ffi::Py_ssize_t,
            1,
            flags,
        )
    }
}

unsafe extern "C" fn length(obj: *mut ffi::PyObject) -> ffi::Py_ssize_t {
    // SAFETY: CPython passes one of our instances.
    unsafe { (*obj.cast::<SharedObject>()).len as ffi::Py_ssize_t }
}

/// Creates this interpreter's `SharedBytes` type (call from the module's exec).
pub fn make_type(gil: Gil<'_>, module: &Obj) -> PyResult<Obj> {
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_bf_getbuffer,
            pfunc: getbuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_sq_length,
            pfunc: length as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: c"Read-only bytes shared by all interpreters without copying; see parpy.share()."
                .as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"parpy.SharedBytes".as_ptr(),
        basicsize: std::mem::size_of::<SharedObject>() as c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: attached (token); the spec and slots are read during the call
    // only (CPython copies what it keeps); `module` is a live module.
    unsafe {
        Obj::result(
            gil,
            ffi::PyType_FromModuleAndSpec(module.ptr(), &mut spec, ptr::null_mut()),
        )
    }
}

/// A new instance of `tp` (this interpreter's SharedBytes type) over `data`.
pub fn new_shared(gil: Gil<'_>, tp: &Obj, data: Arc<[u8]>) -> PyResult<Obj> {
    if !is_shared_type(tp) {
        return Err(PyErr::new(
            gil,
            super::ExcKind::TypeError,
            "not parpy.SharedBytes",
        ));
    }
    // SAFETY: attached; `tp` is our heap type (checked above), whose
    // instances are `SharedObject`s; the Arc count is moved into the object.
    unsafe {
        let obj = Obj::result(gil, ffi::PyType_GenericAlloc(tp.ptr().cast(), 0))?;
        let o = obj.ptr().cast::<SharedObject>();
        let len = data.len();
        (*o).data = Arc::into_raw(data).cast::<u8>();
        (*o).len = len;
        Ok(obj)
    }
}

fn is_shared_type(tp: &Obj) -> bool {
    // SAFETY: reading a slot of a live type object; attached (an Obj exists).
    unsafe {
        ffi::PyType_Check(tp.ptr()) != 0
            && ffi::PyType_GetSlot(tp.ptr().cast(), ffi::Py_tp_dealloc) == dealloc as *mut c_void
    }
}

/// The shared data of a `SharedBytes` instance (of any interpreter's type), else None.
pub fn shared_data(obj: &Obj) -> Option<Arc<[u8]>> {
    // SAFETY: attached; the type check proves `obj` is a `SharedObject`,
    // whose data holds a live Arc count; we add one for the caller.
    unsafe {
        let tp = ffi::Py_TYPE(obj.ptr());
        if ffi::PyType_GetSlot(tp, ffi::Py_tp_dealloc) != dealloc as *mut c_void {
            return None;
        }
        let o = obj.ptr().cast::<SharedObject>();
        let raw = ptr::slice_from_raw_parts((*o).data, (*o).len);
        Arc::increment_strong_count(raw);
        Some(Arc::from_raw(raw))
    }
}
