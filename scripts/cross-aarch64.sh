#!/usr/bin/env bash
# Cross-builds hsconas-runtime for aarch64 Linux (a Jetson) on an x86-64 Debian/Ubuntu machine, checks that
# the binary needs nothing native beyond the C library (ONNX Runtime is loaded at run time, TLS is rustls
# with ring), then runs its agent under qemu-user: a health check over HTTP, a JSON error, and HTTPS with a
# token and a self-signed certificate. Installs what it needs (gcc-aarch64-linux-gnu, qemu-user, the rustup
# target). Build outputs go to CARGO_TARGET_DIR (default target/; the aarch64 build is a separate tree in it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  sudo=$([[ $(id -u) == 0 ]] || echo sudo)
  $sudo apt-get install -y -q "${need[@]}" >&2
fi
rustup target add aarch64-unknown-linux-gnu >&2
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build --target aarch64-unknown-linux-gnu -p hsconas-runtime --bin hsconas-runtime >&2
bin=${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/debug/hsconas-runtime
file "$bin"
needed=$(aarch64-linux-gnu-readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort | xargs)
echo "needs: $needed"
for lib in $needed; do
  case $lib in
    libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux-aarch64.so.1) ;;
    *) echo "FAIL: needs $lib beyond the C library" >&2; exit 1 ;;
  esac
done

tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
run() { qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" "$@"; }
wait_url() { for _ in $(seq 100); do [[ -s $1 ]] && break; sleep 0.2; done; sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$1"; }

run serve --listen 127.0.0.1:0 >"$tmp/plain.json" 2>/dev/null &
url=$(wait_url "$tmp/plain.json")
echo "health: $(curl -sf "$url/v1/health")"
echo "DELETE /v1/health: $(curl -s -X DELETE "$url/v1/health")"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
echo t0ken >"$tmp/token"
run serve --listen 127.0.0.1:0 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  --token-file "$tmp/token" >"$tmp/tls.json" 2>/dev/null &
url=$(wait_url "$tmp/tls.json")
echo "HTTPS health with the token: $(curl -sf --cacert "$tmp/cert.pem" -H 'Authorization: Bearer t0ken' "$url/v1/health")"
echo "HTTPS health without it: $(curl -s --cacert "$tmp/cert.pem" "$url/v1/health")"
echo "OK: the aarch64 agent builds with nothing native beyond libc and serves HTTP and HTTPS"
