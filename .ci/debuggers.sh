#!/usr/bin/env bash
# The debuggers the native layer's tests drive, installed once with their own registries' clients into
# /var/cache/tether/debuggers (shared, like the kube binaries): debugpy from PyPI (python/, for
# PYTHONPATH) and dlv from Go modules (bin/dlv). Safe to re-run.
set -euo pipefail
dir=${TETHER_DEBUGGERS:-/var/cache/tether/debuggers}
mkdir -p "$dir"
if [ ! -d "$dir/python/debugpy" ]; then
  echo "--- debugpy (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --target "$dir/python" debugpy
fi
if [ ! -x "$dir/bin/dlv" ]; then
  echo "--- dlv (Go modules)"
  go=$(command -v go || echo /usr/local/go/bin/go)
  GOBIN="$dir/bin" "$go" install github.com/go-delve/delve/cmd/dlv@latest
fi
