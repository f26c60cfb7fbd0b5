//! Quiet exit when standard output is closed early (`hsconas arch sample --count 1000 | head -n 3`).
//!
//! Rust programs ignore SIGPIPE, so a write to a closed pipe fails with EPIPE and `println!` panics with
//! "failed printing to stdout: Broken pipe". Command-line tools are expected to stop silently instead.

/// Exit status a shell reports for a process killed by SIGPIPE (128 + 13).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Installs a panic hook that turns `println!`'s broken-pipe panic into a silent exit with
/// [`BROKEN_PIPE_STATUS`]; every other panic reaches the previous hook unchanged. Call it first in `main`.
pub fn exit_quietly_on_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        previous(info);
    }));
}
