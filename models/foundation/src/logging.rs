//! The binaries' log output: messages of the libraries (`tracing`) on standard error, without time stamps
//! or module paths, coloured only on a terminal; `RUST_LOG` overrides the default filter.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber with `default_filter` (comma-separated `level` or `target=level` directives,
/// e.g. `warn,hsconas_nas=info`) unless `RUST_LOG` holds such directives. A `RUST_LOG` that is not
/// understood is named in a warning and the default is used. Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    let default = default_filter
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::WARN));
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let (filter, refused) = match from_env.map(|value| (value.parse::<Targets>(), value)) {
        Some((Ok(filter), _)) => (filter, None),
        Some((Err(error), value)) => (default, Some(format!("{value:?} ({error})"))),
        None => (default, None),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .without_time()
                .with_target(false),
        )
        .with(filter)
        .init();
    if let Some(refused) = refused {
        tracing::warn!(
            "RUST_LOG {refused} is not a list of `level` or `target=level` directives; using {default_filter:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binaries_default_filters_are_understood() {
        let filter: Targets = "warn,hsconas_latency=info,hsconas_nas=info"
            .parse()
            .expect("directives");
        assert!(filter.would_enable("hsconas_nas::search", &tracing::Level::INFO));
        assert!(!filter.would_enable("hsconas_nas::search", &tracing::Level::DEBUG));
        assert!(!filter.would_enable("tract_core", &tracing::Level::INFO));
        assert!(filter.would_enable("tract_core", &tracing::Level::WARN));
        assert!("warn,[span]=x".parse::<Targets>().is_err());
    }
}
