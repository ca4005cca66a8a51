#!/usr/bin/env bash
# Installs the system tools Tether's playground and tests drive (Debian, as root): iproute2,
# iptables (nft and legacy), util-linux (nsenter, setpriv), curl, dig, openssl, kubectl,
# python3, and the grpcio Python package. Only what is missing is installed. Used by .ci/run and `npm run playground`.
# With arguments, ensures those instead: COMMAND:PACKAGE (installed when COMMAND is not on PATH) or
# PACKAGE (installed when dpkg does not have it), e.g. `bash .ci/deps.sh skopeo:skopeo ca-certificates`.
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(ip:iproute2 iptables:iptables iptables-legacy:iptables nsenter:util-linux setpriv:util-linux curl:curl dig:dnsutils openssl:openssl kubectl:kubernetes-client python3:python3 make:make cc:gcc javac:openjdk-17-jdk-headless)
need_apt=()
for want in "${wanted[@]}"; do
  case $want in
    *:*) command -v "${want%%:*}" >/dev/null 2>&1 || need_apt+=("${want##*:}") ;;
    *) dpkg -s "$want" >/dev/null 2>&1 || need_apt+=("$want") ;;
  esac
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need_apt[*]} (install them, or run as root so this script can)" >&2
    exit 1
  fi
  echo "--- apt: ${need_apt[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >&2
fi
[ $# -eq 0 ] || exit 0

# grpcio: the Python gRPC client of the HTTP/2 steal tests (a real client library, from PyPI)
if ! python3 -c 'import grpc' >/dev/null 2>&1; then
  echo "--- pip: grpcio"
  python3 -m pip install --quiet grpcio==1.85.1 || python3 -m pip install --quiet --break-system-packages grpcio==1.85.1
fi
