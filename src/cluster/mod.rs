//! Running parpy scripts on a Dask cluster.
//!
//! * [`address`]: the scheduler a script's main interpreter is a client of
//!   (`--cluster ADDR` or `PARPY_CLUSTER`).
//! * [`worker`]: `parpy worker SCHEDULER [-j N]`, a `distributed.Worker`
//!   whose tasks run in this process's pool of sub-interpreters.
//!
//! The Python half is `src/api/python/parpy_cluster.py`, embedded as source:
//! it is only compiled by a process that uses a cluster.

pub mod address;
pub mod worker;

use crate::ffi::{Gil, Obj, PyResult};

/// The Python half (`parpy_cluster`), loaded by `parpy._cluster()` in any interpreter.
pub const SOURCE: &str = include_str!("../api/python/parpy_cluster.py");

/// `_cluster_info() -> (source, scheduler address or None, parpy version)`.
pub fn info(gil: Gil<'_>, _: &[Obj]) -> PyResult<Obj> {
    let addr = match address::get() {
        Some(a) => gil.str(a)?,
        None => gil.none(),
    };
    gil.tuple(vec![
        gil.str(SOURCE)?,
        addr,
        gil.str(env!("CARGO_PKG_VERSION"))?,
    ])
}
