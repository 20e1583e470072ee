#!/usr/bin/env bash
# Build the Go runtime (runtimes/go) into runtimes/go/bin/airflow-go-runtime and print its path;
# with --target NAME, the command runtimes/go/cmd/NAME into runtimes/go/bin/NAME instead (e.g.
# --target bench-scale-child, the compiled child of bench/scale.py --child go).
#
# Offline by design: the Go toolchain and the Go sources it needs come from Debian packages
# (golang-go, golang-github-vmihailenco-msgpack.v5-dev, golang-golang-x-exp-dev), which this
# script installs with apt-get when they are missing and it runs as root. runtimes/go/go.mod
# points `replace` lines at the folders those packages install, and the build runs with
# GOPROXY=off, so no module proxy or network is used.
#
# Idempotent: when the binary is newer than every source file it is not rebuilt.
#
# Usage: tools/build_go_runtime.sh [--force] [--target NAME]
#   stdout: the absolute path of the binary (one line); progress goes to stderr.
#   exit 0 on success, non-zero with a message on stderr otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/runtimes/go"
TARGET=airflow-go-runtime
FORCE=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) FORCE=1 ;;
        --target)
            [[ $# -ge 2 ]] || { echo "build_go_runtime.sh: --target needs a NAME" >&2; exit 2; }
            TARGET="$2"; shift ;;
        --target=*) TARGET="${1#--target=}" ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_go_runtime.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ ! "$TARGET" =~ ^[A-Za-z0-9_-]+$ || ! -d "$SRC/cmd/$TARGET" ]]; then
    echo "build_go_runtime.sh: no command runtimes/go/cmd/$TARGET" >&2
    exit 2
fi
BIN="$SRC/bin/$TARGET"

log() { echo "build_go_runtime: $*" >&2; }

GOCODE=/usr/share/gocode/src
DEBIAN_PACKAGES=(golang-go golang-github-vmihailenco-msgpack.v5-dev golang-golang-x-exp-dev)
REQUIRED_SOURCES=(
    "$GOCODE/github.com/vmihailenco/msgpack/v5/go.mod"
    "$GOCODE/github.com/vmihailenco/tagparser/v2/go.mod"
    "$GOCODE/golang.org/x/exp/slog/logger.go"
)

missing_prerequisites() {
    command -v go >/dev/null 2>&1 || { echo "go"; return; }
    local f
    for f in "${REQUIRED_SOURCES[@]}"; do
        [[ -e "$f" ]] || { echo "$f"; return; }
    done
}

# Fast path: an up-to-date binary needs neither the toolchain check nor a build.
if [[ $FORCE -eq 0 && -x "$BIN" ]]; then
    newer="$(find "$SRC" -path "$SRC/bin" -prune -o -type f \( -name '*.go' -o -name 'go.mod' \) \
        -newer "$BIN" -print -quit)"
    if [[ -z "$newer" && "$0" -ot "$BIN" ]]; then
        echo "$BIN"
        exit 0
    fi
fi

if [[ -n "$(missing_prerequisites)" ]]; then
    log "missing $(missing_prerequisites); installing Debian packages: ${DEBIAN_PACKAGES[*]}"
    if [[ "$(id -u)" -ne 0 ]]; then
        log "not root: install them yourself: sudo apt-get install -y ${DEBIAN_PACKAGES[*]}"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${DEBIAN_PACKAGES[@]}" >&2; then
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends "${DEBIAN_PACKAGES[@]}" >&2
    fi
    if [[ -n "$(missing_prerequisites)" ]]; then
        log "still missing after the install: $(missing_prerequisites)"
        exit 1
    fi
fi

# Offline module mode: every dependency is a local `replace`, so there is no go.sum and no proxy.
export GOPROXY=off GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local GOWORK=off
# Caches under the project (gitignored .cache/) unless the caller chose others; this also
# works where HOME is unset.
export GOCACHE="${GOCACHE:-$ROOT/.cache/go/build}"
export GOPATH="${GOPATH:-$ROOT/.cache/go/path}"

log "building with $(go version) ..."
mkdir -p "$SRC/bin"
tmp="$(mktemp "$SRC/bin/.$TARGET.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
(cd "$SRC" && go build -trimpath -o "$tmp" "./cmd/$TARGET")
chmod 0755 "$tmp"
mv -f "$tmp" "$BIN"
trap - EXIT
log "built $BIN"
echo "$BIN"
