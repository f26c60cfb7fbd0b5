#!/usr/bin/env bash
# The project's test command: installs what is missing (scripts/setup.sh), then checks formatting, lints
# and runs the whole test suite. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# MPI too: the suite includes the data-parallel tests (real `mpirun` processes on loopback).
bash scripts/setup.sh --mpi
# One feature set for clippy, build and test, so that nothing compiles twice: the default build plus `mpi`
# (which adds the MPI binding to hsconas-distributed and the `hsconas` binary; nothing else changes).
features=(--features hsconas/mpi)
# insta locates snapshots from the manifest directory compiled into a test binary; a binary reused from the
# shared target folder after a checkout at another path would look there. The repository root is the
# workspace root, read at run time.
export INSTA_WORKSPACE_ROOT="$PWD"
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets "${features[@]}" -- -D warnings
# The `hsconas` binary without its default `train` feature: the latency workflow without libtorch. With
# --workspace every dependency keeps the features of the default build, so only `hsconas` compiles again.
cargo clippy --workspace --all-targets --no-default-features -- -D warnings
echo "== cargo test --no-default-features (hsconas without libtorch)" >&2
cargo test --workspace --no-default-features --test latency_workflow
echo "== cargo build" >&2
# The end-to-end tests run the `hsconas` and `hsconas-runtime` binaries, which `cargo test` does not build
# for another package's tests. --all-targets keeps the feature set of `cargo test`, so nothing builds twice.
cargo build --workspace --all-targets "${features[@]}"
echo "== cargo test" >&2
cargo test --workspace "${features[@]}" "$@"
