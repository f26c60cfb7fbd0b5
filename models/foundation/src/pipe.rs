//! Quiet exits when standard output is closed early (`hsconas arch sample --count 1000 | head -n 3`).
//!
//! Rust programs ignore SIGPIPE, so a write to a closed pipe fails with `EPIPE`. Command-line output goes
//! through [`outln!`](crate::outln), which returns that error instead of panicking as `println!` does;
//! `main` then asks [`is_broken_pipe`] of the error chain (as ripgrep does) and exits silently with
//! [`BROKEN_PIPE_STATUS`], the status a shell reports for a process that SIGPIPE ended.

use std::error::Error;

/// Exit status for a closed standard output: what a shell reports for SIGPIPE (128 + 13).
pub const BROKEN_PIPE_STATUS: u8 = 141;

/// Whether `err` or any error in its `source()` chain is an I/O error of kind `BrokenPipe`.
pub fn is_broken_pipe(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `println!` that returns the write's `std::io::Result<()>` instead of panicking on a closed pipe:
/// `outln!("{x}")?;`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` in one write: the line, newline included, is formatted first and written with a single
/// `write_all` (standard error is unbuffered, so `eprintln!` writes each formatted piece separately and
/// the lines of processes sharing a pipe, such as MPI ranks, interleave mid-line). A failed write is
/// ignored, as `eprintln!` would panic on it.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut line = ::std::format!($($arg)*);
        line.push('\n');
        let _ = ::std::io::stderr().lock().write_all(line.as_bytes());
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("printing the table")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn broken_pipes_are_found_anywhere_in_the_chain() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&pipe));
        assert!(is_broken_pipe(&Wrapper(pipe)));
        let other = Wrapper(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(&other));
    }
}
