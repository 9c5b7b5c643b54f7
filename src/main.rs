//! The `parpy` executable: parse parpy's options, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match parpy::run(std::env::args_os().collect()) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("parpy: {err:#}");
            ExitCode::from(2)
        }
    }
}
