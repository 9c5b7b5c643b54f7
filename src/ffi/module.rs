//! The built-in `parpy` module, importable in every interpreter.
//!
//! It is registered in the inittab before the main interpreter starts, and
//! uses multi-phase initialisation with per-interpreter-GIL support, so each
//! sub-interpreter gets its own instance. Functions are plain Rust `fn`s
//! called through one trampoline; their Python objects never cross interpreters.

use std::ffi::{CStr, c_void};
use std::ptr;
use std::sync::OnceLock;

use pyo3_ffi as ffi;

use super::object::{Gil, Obj, PyErr, PyResult};

/// A Rust function exposed to Python. It receives positional arguments only.
pub struct NativeFn {
    /// Attribute name in the module.
    pub name: &'static CStr,
    /// The function.
    pub f: fn(Gil<'_>, &[Obj]) -> PyResult<Obj>,
}

impl NativeFn {
    /// A table entry.
    pub const fn new(name: &'static CStr, f: fn(Gil<'_>, &[Obj]) -> PyResult<Obj>) -> NativeFn {
        NativeFn { name, f }
    }
}

/// What the built-in module holds: native functions, then a body that runs
/// in the new module (for example its Python source).
pub struct ModuleSpec {
    /// Native functions, added before `exec` runs.
    pub functions: &'static [NativeFn],
    /// Fills the module; called once per interpreter that imports it.
    pub exec: fn(Gil<'_>, &Obj) -> PyResult<()>,
}

static SPEC: OnceLock<&'static ModuleSpec> = OnceLock::new();

struct MethodDefs(Vec<ffi::PyMethodDef>);
// SAFETY: the defs are immutable after creation and point at 'static data only.
unsafe impl Send for MethodDefs {}
// SAFETY: as above.
unsafe impl Sync for MethodDefs {}
static DEFS: OnceLock<MethodDefs> = OnceLock::new();

const CAPSULE: &CStr = c"parpy.native";

static mut SLOTS: [ffi::PyModuleDef_Slot; 3] = [
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: module_exec as *mut c_void,
    },
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_multiple_interpreters,
        value: ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
    },
    ffi::PyModuleDef_Slot {
        slot: 0,
        value: ptr::null_mut(),
    },
];

static mut MODULE_DEF: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"parpy".as_ptr(),
    m_doc: c"True parallelism for Python: own-GIL sub-interpreters on OS threads.".as_ptr(),
    m_size: 0,
    m_methods: ptr::null_mut(),
    // SAFETY (static initialiser): only the address is taken.
    m_slots: &raw mut SLOTS as *mut ffi::PyModuleDef_Slot,
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// Registers `parpy` as a built-in module. Call once, before the main
/// interpreter is initialised.
pub fn register(spec: &'static ModuleSpec) {
    if SPEC.set(spec).is_err() {
        return;
    }
    DEFS.get_or_init(|| {
        MethodDefs(
            spec.functions
                .iter()
                .map(|nf| ffi::PyMethodDef {
                    ml_name: nf.name.as_ptr(),
                    ml_meth: ffi::PyMethodDefPointer {
                        PyCFunctionFast: trampoline,
                    },
                    ml_flags: ffi::METH_FASTCALL,
                    ml_doc: ptr::null(),
                })
                .collect(),
        )
    });
    // SAFETY: no interpreter exists yet (the caller's contract); the name is 'static.
    unsafe {
        ffi::PyImport_AppendInittab(c"parpy".as_ptr(), Some(init_parpy));
    }
}

extern "C" fn init_parpy() -> *mut ffi::PyObject {
    // SAFETY: called by the import system with the importing interpreter attached.
    unsafe { ffi::PyModuleDef_Init(&raw mut MODULE_DEF) }
}

extern "C" fn module_exec(module: *mut ffi::PyObject) -> std::os::raw::c_int {
    // SAFETY: called by the import system, attached to the importing interpreter;
    // `module` is a borrowed reference to the new module.
    let (gil, module) = unsafe { (Gil::assume(), Obj::from_borrowed(module)) };
    let Some(spec) = SPEC.get() else { return -1 };
    let defs = &DEFS.get().expect("registered").0;
    let result = (|| -> PyResult<()> {
        for (i, nf) in spec.functions.iter().enumerate() {
            // SAFETY: attached; the capsule points at a 'static NativeFn.
            let func = unsafe {
                let cap = Obj::result(
                    gil,
                    ffi::PyCapsule_New(
                        (nf as *const NativeFn).cast_mut().cast(),
                        CAPSULE.as_ptr(),
                        None,
                    ),
                )?;
                let def = (&defs[i] as *const ffi::PyMethodDef).cast_mut();
                Obj::result(gil, ffi::PyCFunction_NewEx(def, cap.ptr(), ptr::null_mut()))?
            };
            module.setattr(gil, nf.name, &func)?;
        }
        (spec.exec)(gil, &module)
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            e.restore(gil);
            -1
        }
    }
}

unsafe extern "C" fn trampoline(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls us attached to the calling interpreter; `slf` is
    // the capsule made in `module_exec` and `args` holds `nargs` borrowed refs.
    unsafe {
        let gil = Gil::assume();
        let nf = ffi::PyCapsule_GetPointer(slf, CAPSULE.as_ptr()) as *const NativeFn;
        if nf.is_null() {
            return ptr::null_mut();
        }
        let argv: Vec<Obj> = (0..nargs as usize)
            .map(|i| Obj::from_borrowed(*args.add(i)))
            .collect();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ((*nf).f)(gil, &argv)));
        drop(argv);
        // Loans that workers finished with (e.g. the jobs whose results this
        // call just received) are released here, in the main interpreter.
        super::lent::release_lent(gil);
        match out {
            Ok(Ok(obj)) => obj.into_ptr(),
            Ok(Err(err)) => {
                err.restore(gil);
                ptr::null_mut()
            }
            Err(_) => {
                PyErr::new(
                    gil,
                    super::ExcKind::RuntimeError,
                    "parpy: internal error (Rust panic)",
                )
                .restore(gil);
                ptr::null_mut()
            }
        }
    }
}
