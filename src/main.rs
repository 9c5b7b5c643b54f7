//! The `parpy` executable: parse parpy's options, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match parpy::run(std::env::args_os().collect()) {
        // As C's exit(): the status is the code's low byte (256 is 0, -1 is 255).
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("parpy: {err:#}");
            ExitCode::from(2)
        }
    }
}
