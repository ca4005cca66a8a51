#!/usr/bin/env bash
# Builds the Kubernetes control plane + kubelet and etcd from Go modules (nothing in Debian or npm
# ships them), cached by version: a second run prints the cache directory in a second.
# Usage: bash test/k8s/build-binaries.sh   -> prints the directory holding the binaries
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${TETHER_K8S_CACHE:-/var/cache/tether/k8s}/$K8S_VERSION-etcd$ETCD_VERSION
BINS=(kube-apiserver kubelet kube-controller-manager kube-scheduler etcd)
log() { echo "[k8s-build $(date +%T)] $*" >&2; }

have_all() { for b in "${BINS[@]}"; do [ -x "$CACHE/$b" ] || return 1; done; }
if have_all; then echo "$CACHE"; exit 0; fi
mkdir -p "$CACHE"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

minor=${K8S_VERSION#v1.}; staging="v0.$minor"
log "kubernetes $K8S_VERSION (staging modules at $staging)"
mkdir -p "$WORK/kube" && cd "$WORK/kube"
go mod init tether.local/kube-build >/dev/null 2>&1
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "require k8s.io/kubernetes $K8S_VERSION"
  grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$modfile" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
go mod tidy -e >/dev/null 2>"$WORK/tidy.log" || { tail -20 "$WORK/tidy.log" >&2; exit 1; }
for b in kube-apiserver kubelet kube-controller-manager kube-scheduler; do
  [ -x "$CACHE/$b" ] && continue
  log "go build $b"
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$CACHE/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$CACHE/$b.tmp" "$CACHE/$b"
done

if [ ! -x "$CACHE/etcd" ]; then
  log "etcd $ETCD_VERSION"
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd"
  go mod init tether.local/etcd-build >/dev/null 2>&1
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >> go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' > tools.go
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy -e >/dev/null 2>"$WORK/etcd-tidy.log" || { tail -20 "$WORK/etcd-tidy.log" >&2; exit 1; }
  go build -trimpath -ldflags "-s -w" -o "$CACHE/etcd.tmp" .
  mv "$CACHE/etcd.tmp" "$CACHE/etcd"
fi
have_all
log "done"
echo "$CACHE"
