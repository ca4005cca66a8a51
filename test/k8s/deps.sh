#!/usr/bin/env bash
# What the real-cluster suite needs on the machine, installed when missing (Debian, as root):
# containerd, runc, the CNI plugins and docker-registry (the distribution registry) from apt; Go for
# build-binaries.sh must already be there.
# Then the binaries (cached by version under /var/cache/tether/k8s; cold: ~12 min on 2 cores).
set -euo pipefail
need=()
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry) # agentImage.test.ts pushes to it
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test/k8s: missing ${need[*]} (install them, or run as root so this script can)" >&2
    exit 0 # the suite prints why it skips (and fails under CI=true)
  fi
  echo "--- apt: ${need[*]}"
  apt-get update -q
  # the prometheus package would start its own daemon on the machine: the suite runs one per cluster
  # instead, so services are not started while installing (policy-rc.d, only if none is there)
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" || status=$?
  if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$status" = 0 ] || exit "$status"
fi
export PATH="$PATH:/usr/local/go/bin"
if command -v go >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  bash "$(dirname "$0")/build-binaries.sh" >/dev/null
  bash "$(dirname "$0")/build-extras.sh" >/dev/null
  bash "$(dirname "$0")/build-mesh.sh" >/dev/null
fi
