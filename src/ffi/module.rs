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
    m_name: c"parpy._native".as_ptr(),
    m_doc: c"True parallelism for Python: own-GIL sub-interpreters on OS threads.".as_ptr(),
    m_size: 0,
    m_methods: ptr::null_mut(),
    // SAFETY (static initialiser): only the address is taken.
    m_slots: &raw mut SLOTS as *mut ffi::PyModuleDef_Slot,
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// Registers `parpy._native` as a built-in module. Call once, before the
/// main interpreter is initialised.
pub fn register(spec: &'static ModuleSpec) {
    if !prepare(spec) {
        return;
    }
    // SAFETY: no interpreter exists yet (the caller's contract); the name is 'static.
    unsafe {
        ffi::PyImport_AppendInittab(c"parpy._native".as_ptr(), Some(init_parpy));
    }
}

/// The module's init function for an extension module build (the wheel's
/// `parpy/_native.so`): what its exported `PyInit__native` returns.
pub fn extension_init(spec: &'static ModuleSpec) -> *mut ffi::PyObject {
    prepare(spec);
    init_parpy()
}

/// Records `spec` and builds its method table; false if that was done before.
fn prepare(spec: &'static ModuleSpec) -> bool {
    if SPEC.set(spec).is_err() {
        return false;
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
    true
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

/// A module of Python code compiled ahead of time (marshalled code object).
pub struct FrozenModule {
    /// Dotted module name.
    pub name: &'static CStr,
    /// `marshal.dumps` of the module's code object, by the CPython linked.
    pub code: &'static [u8],
    /// Whether it is a package (gets `__path__`, submodules are found by full name).
    pub is_package: bool,
}

struct FrozenTable(Vec<ffi::_frozen>);
// SAFETY: immutable after creation; points at 'static data only.
unsafe impl Send for FrozenTable {}
// SAFETY: as above.
unsafe impl Sync for FrozenTable {}
static FROZEN: OnceLock<FrozenTable> = OnceLock::new();

/// Adds `modules` to CPython's table of frozen modules, which its
/// `FrozenImporter` (ahead of `sys.path`) serves to every interpreter.
/// Call once, before the main interpreter is initialised.
pub fn register_frozen(modules: &'static [FrozenModule]) {
    let mut done = false;
    let table = FROZEN.get_or_init(|| {
        done = true;
        let mut v: Vec<ffi::_frozen> = Vec::new();
        // SAFETY: no interpreter exists yet, so nothing reads the table while
        // it is copied; CPython's own table (if any) ends with a NULL name.
        unsafe {
            let mut p = ffi::PyImport_FrozenModules;
            while !p.is_null() && !(*p).name.is_null() {
                v.push(*p);
                p = p.add(1);
            }
        }
        for m in modules {
            v.push(frozen_entry(m.name.as_ptr(), m.code, m.is_package));
        }
        v.push(frozen_entry(ptr::null(), &[], false));
        FrozenTable(v)
    });
    if done {
        // SAFETY: before initialisation (the caller's contract); the table is
        // 'static (in a OnceLock) and never changes again.
        unsafe { ffi::PyImport_FrozenModules = table.0.as_ptr() }
    }
}

fn frozen_entry(name: *const std::ffi::c_char, code: &'static [u8], pkg: bool) -> ffi::_frozen {
    // SAFETY: `_frozen` is pointers, ints and (on 3.12) an optional function
    // pointer, all valid when zero; zeroed first because its fields differ
    // between versions (3.12's `get_code`, NULL here: use `code`).
    let mut f: ffi::_frozen = unsafe { std::mem::zeroed() };
    f.name = name;
    f.code = if name.is_null() {
        ptr::null()
    } else {
        code.as_ptr()
    };
    f.size = code.len() as std::os::raw::c_int;
    f.is_package = pkg as std::os::raw::c_int;
    f
}
