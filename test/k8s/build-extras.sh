#!/usr/bin/env bash
# Builds what the real-cluster suite needs besides build-binaries.sh's five: kube-proxy (same
# wrapper-module technique, so Services' ClusterIPs work as on a user's cluster) and a static
# `pause` for the pod sandbox image (no registry here to pull registry.k8s.io/pause from).
# Cached next to the others; a second run prints the cache directory at once.
# Usage: bash test/k8s/build-extras.sh   -> prints the directory holding the binaries
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${TETHER_K8S_CACHE:-/var/cache/tether/k8s}/$K8S_VERSION-etcd$ETCD_VERSION
log() { echo "[k8s-build-extras $(date +%T)] $*" >&2; }
if [ -x "$CACHE/kube-proxy" ] && [ -x "$CACHE/pause" ]; then echo "$CACHE"; exit 0; fi
mkdir -p "$CACHE"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ ! -x "$CACHE/pause" ]; then
  log "pause"
  mkdir -p "$WORK/pause" && cd "$WORK/pause"
  go mod init tether.local/pause >/dev/null 2>&1
  cat > main.go <<'GO'
// The pod sandbox's process: sleeps until SIGTERM/SIGINT and reaps orphans (it is PID 1).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
GO
  go build -trimpath -ldflags "-s -w" -o "$CACHE/pause.tmp" . && mv "$CACHE/pause.tmp" "$CACHE/pause"
fi

if [ ! -x "$CACHE/kube-proxy" ]; then
  minor=${K8S_VERSION#v1.}; staging="v0.$minor"
  log "kube-proxy $K8S_VERSION"
  mkdir -p "$WORK/kube" && cd "$WORK/kube"
  go mod init tether.local/kube-proxy-build >/dev/null 2>&1
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-proxy"\n' > tools.go
  go mod tidy -e >/dev/null 2>"$WORK/tidy.log" || { tail -20 "$WORK/tidy.log" >&2; exit 1; }
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$CACHE/kube-proxy.tmp" k8s.io/kubernetes/cmd/kube-proxy
  mv "$CACHE/kube-proxy.tmp" "$CACHE/kube-proxy"
fi
log "done"
echo "$CACHE"
