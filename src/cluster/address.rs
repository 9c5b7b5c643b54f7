//! The Dask scheduler that this process's script sends its tasks to.

use std::sync::OnceLock;

static ADDRESS: OnceLock<Option<String>> = OnceLock::new();

/// Fixes the address at start-up: `--cluster ADDR`, else `PARPY_CLUSTER`
/// (empty means none). Called once, before the main interpreter starts.
pub fn init(option: Option<&str>) {
    let chosen = option
        .map(str::to_owned)
        .or_else(|| std::env::var("PARPY_CLUSTER").ok())
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    let _ = ADDRESS.set(chosen);
}

/// The scheduler's address, when the script runs on a cluster.
pub fn get() -> Option<&'static str> {
    ADDRESS.get().and_then(|a| a.as_deref())
}

/// No cluster for this process, whatever `PARPY_CLUSTER` says (a `parpy worker`
/// is not a client). Called before [`init`], which then changes nothing.
pub fn disable() {
    let _ = ADDRESS.set(None);
}
