#!/usr/bin/env bash
# Builds the real parts of the suite's service mesh, cached like the kube binaries:
# - istio-iptables, Istio's own init-container program (the pod's iptables rules), from the
#   istio.io/istio Go module at ISTIO_VERSION: a main around tools/istio-iptables/pkg/cmd, the package
#   pilot-agent's `istio-iptables` subcommand runs;
# - mesh-proxy (test/k8s/mesh/proxy.go): the sidecar and ingress gateway standing in for Envoy, which
#   no registry here ships; cached by the hash of its source.
# Usage: bash test/k8s/build-mesh.sh   -> prints "istio-iptables=PATH" and "mesh-proxy=PATH"
set -euo pipefail
ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}
ROOT=${TETHER_K8S_CACHE:-/var/cache/tether/k8s}
HERE=$(cd "$(dirname "$0")" && pwd)
# istio-iptables as Istio's init container runs it (`pilot-agent istio-iptables ...`, with the
# logging flags pilot-agent attaches, such as --log_output_level)
ISTIO_MAIN='package main

import (
	"os"

	"istio.io/istio/pkg/log"
	"istio.io/istio/tools/istio-iptables/pkg/cmd"
)

func main() {
	opts := log.DefaultOptions()
	c := cmd.GetCommand(opts)
	opts.AttachCobraFlags(c)
	if err := c.Execute(); err != nil {
		os.Exit(1)
	}
}'
ISTIO_DIR=$ROOT/istio-$ISTIO_VERSION-$(printf '%s' "$ISTIO_MAIN" | sha256sum | cut -c1-8)
PROXY_HASH=$(sha256sum "$HERE/mesh/proxy.go" | cut -c1-12)
PROXY_DIR=$ROOT/mesh-proxy-$PROXY_HASH
log() { echo "[k8s-build-mesh $(date +%T)] $*" >&2; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$ISTIO_DIR/istio-iptables" ]; then
  log "istio-iptables from istio.io/istio@$ISTIO_VERSION (cold: a few minutes)"
  mkdir -p "$ISTIO_DIR" "$WORK/istio" && cd "$WORK/istio"
  go mod init tether.local/istio-iptables >/dev/null 2>&1
  echo "require istio.io/istio $ISTIO_VERSION" >> go.mod
  printf '%s\n' "$ISTIO_MAIN" > main.go
  go mod tidy -e >/dev/null 2>"$WORK/tidy.log" || { tail -20 "$WORK/tidy.log" >&2; exit 1; }
  go build -trimpath -ldflags "-s -w" -o "$ISTIO_DIR/istio-iptables.tmp" .
  mv "$ISTIO_DIR/istio-iptables.tmp" "$ISTIO_DIR/istio-iptables"
fi

if [ ! -x "$PROXY_DIR/mesh-proxy" ]; then
  log "mesh-proxy ($PROXY_HASH)"
  mkdir -p "$PROXY_DIR" "$WORK/proxy" && cd "$WORK/proxy"
  go mod init tether.local/mesh-proxy >/dev/null 2>&1
  cp "$HERE/mesh/proxy.go" .
  go build -trimpath -ldflags "-s -w" -o "$PROXY_DIR/mesh-proxy.tmp" .
  mv "$PROXY_DIR/mesh-proxy.tmp" "$PROXY_DIR/mesh-proxy"
fi
echo "istio-iptables=$ISTIO_DIR/istio-iptables"
echo "mesh-proxy=$PROXY_DIR/mesh-proxy"
