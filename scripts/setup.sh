#!/usr/bin/env bash
# Installs what hsconas needs to build, test and run, idempotently:
#   - a Python virtual environment with PyTorch 2.13.0 (the libtorch that tch 0.26 links against),
#     onnxruntime 1.31.1 (its libonnxruntime.so is what the `ort` backend loads at run time) and onnx
#     (used by the tests as an oracle: onnx.checker);
#   - older ONNX Runtime releases (1.17.3, the oldest the `ort` backend loads, and 1.16.3, one below it) in
#     their own folder, for the test that runs the runtime on them (npm's onnxruntime-node ships the plain
#     shared library, PyPI's older wheels do not);
#   - links under .hsconas/ in the checkout that .cargo/config.toml points the build at, so that plain
#     `cargo build` / `cargo test` work without exporting any variable;
#   - with --mpi (or HSCONAS_MPI=1): Open MPI and its headers, and libclang for the `mpi` crate's bindings
#     (Debian/Ubuntu: openmpi-bin, libopenmpi-dev, libclang-dev), what `--features hsconas/mpi` (data-parallel
#     training under mpirun/srun, docs/scale-out.md) needs; scripts/test.sh asks for it.
# The environment lives outside the checkout (default ~/.cache/hsconas, override with HSCONAS_CACHE) so
# that fresh clones reuse it. Prints what it found.
set -euo pipefail

TORCH_VERSION=2.13.0
ORT_VERSION=1.31.1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${HSCONAS_CACHE:-$HOME/.cache/hsconas}
venv=$cache/venv
stamp=$venv/.hsconas-installed-torch${TORCH_VERSION}-ort${ORT_VERSION}

say() { printf 'setup: %s\n' "$*" >&2; }

mpi=${HSCONAS_MPI:-0}
for arg in "$@"; do
  case $arg in
    --mpi) mpi=1 ;;
    *) say "unknown argument $arg (usage: scripts/setup.sh [--mpi])"; exit 2 ;;
  esac
done

# MPI for the `mpi` feature: a C MPI library with mpicc (the `mpi` crate finds it through mpicc or
# pkg-config) and libclang (bindgen). Installed with the system's package manager when missing.
have_libclang() {
  local pattern
  for pattern in '/usr/lib/*/libclang-[0-9]*.so*' '/usr/lib/*/libclang.so*' '/usr/lib/llvm-*/lib/libclang.so*'; do
    compgen -G "$pattern" >/dev/null && return 0
  done
  return 1
}
if [ "$mpi" = 1 ] && ! { command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 && have_libclang; }; then
  packages="openmpi-bin libopenmpi-dev libclang-dev"
  if ! command -v apt-get >/dev/null 2>&1; then
    say "--mpi: install an MPI library with its compiler wrapper (mpicc) and libclang, e.g. $packages"; exit 1
  fi
  sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing $packages"
  $sudo apt-get install -y -q $packages >/dev/null || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $packages >/dev/null
  } || { say "could not install $packages"; exit 1; }
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install a Rust toolchain (https://rustup.rs) first"; exit 1
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  say "python3 not found: install Python 3.9 or newer with venv support"; exit 1
fi

mkdir -p "$cache"
if [ ! -f "$stamp" ]; then
  # onnxruntime-gpu brings the CUDA and TensorRT execution providers; use it where an NVIDIA driver is.
  ort_pkg=onnxruntime
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ort_pkg=onnxruntime-gpu; fi
  say "creating $venv (torch==$TORCH_VERSION, $ort_pkg==$ORT_VERSION, onnx); this takes a few minutes once"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" "$ort_pkg==$ORT_VERSION" onnx numpy
  touch "$stamp"
fi

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_dir=$site/torch
ort_lib=$(ls "$site"/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -n 1 || true)
[ -f "$torch_dir/lib/libtorch.so" ] || { say "libtorch not found under $torch_dir"; exit 1; }
[ -n "$ort_lib" ] || { say "libonnxruntime.so not found under $site/onnxruntime/capi"; exit 1; }

# Older ONNX Runtime releases for tests/tests/old_onnxruntime.rs: the oldest release this build loads (the
# floor of ort's api-17) and one below it, which must be refused with a clear error.
old_ort=$cache/onnxruntime-old
case $(uname -m) in x86_64) npm_arch=x64 ;; aarch64 | arm64) npm_arch=arm64 ;; *) npm_arch= ;; esac
mkdir -p "$old_ort"
for v in 1.17.3 1.16.3; do
  [ -n "$npm_arch" ] || break
  [ -f "$old_ort/libonnxruntime.so.$v" ] && continue
  say "fetching ONNX Runtime $v (npm onnxruntime-node) into $old_ort"
  tmp=$(mktemp -d)
  if curl -fsSL "https://registry.npmjs.org/onnxruntime-node/-/onnxruntime-node-$v.tgz" -o "$tmp/ort.tgz" &&
    tar xzf "$tmp/ort.tgz" -C "$tmp" "package/bin/napi-v3/linux/$npm_arch/libonnxruntime.so.$v"; then
    mv "$tmp/package/bin/napi-v3/linux/$npm_arch/libonnxruntime.so.$v" "$old_ort/"
  else
    say "could not fetch ONNX Runtime $v: the older-runtime test will fail until this succeeds"
  fi
  rm -rf "$tmp"
done

# Stable names inside the checkout; .cargo/config.toml refers to these (relative = true).
mkdir -p "$repo/.hsconas"
ln -sfn "$venv" "$repo/.hsconas/venv"
ln -sfn "$torch_dir" "$repo/.hsconas/libtorch"
ln -sfn "$ort_lib" "$repo/.hsconas/libonnxruntime.so"
ln -sfn "$old_ort" "$repo/.hsconas/onnxruntime-old"

torch_v=$("$venv/bin/python" -c 'import torch; print(torch.__version__)')
ort_v=$("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__, onnxruntime.get_available_providers())')
onnx_v=$("$venv/bin/python" -c 'import onnx; print(onnx.__version__)')
say "cargo:        $(cargo --version)"
say "python venv:  $venv"
say "torch:        $torch_v ($torch_dir)"
say "onnxruntime:  $ort_v ($ort_lib)"
say "onnx:         $onnx_v"
say "older ORT:    $(cd "$old_ort" && ls libonnxruntime.so.* 2>/dev/null | sed 's/libonnxruntime.so.//' | tr '\n' ' ')($old_ort)"
if [ "$mpi" = 1 ]; then
  say "MPI:          $(mpirun --version 2>/dev/null | head -n 1)"
fi
