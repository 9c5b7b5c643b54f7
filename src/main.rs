//! The `parpy` executable: parse parpy's options, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(parpy::command_main() as u8)
}
