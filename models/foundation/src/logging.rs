//! The binaries' log output: messages of the libraries (`tracing`) on standard error, without time stamps
//! or module paths, coloured only on a terminal; `RUST_LOG` overrides the default filter.

/// Installs the subscriber with `default_filter` (an `EnvFilter` directive such as `warn`) unless
/// `RUST_LOG` is set. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}
