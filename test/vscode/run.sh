#!/usr/bin/env bash
# End-to-end tests of the extension in a real VS Code (code-server, driven by Chromium), against the
# playground: the mocha suite inside the extension host, then the UI scenario.
# Usage: test/vscode/run.sh CODE_SERVER_VERSION [NODE_VERSION]   (run as root, from the repository)
# Artifacts (screenshots, logs) go to .e2e/<version>/artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CS_VERSION=${1:?code-server version}
NODE_VERSION=${2:-}
ROOT=$REPO/.e2e/$CS_VERSION
t() { echo "[e2e $CS_VERSION $(date +%T)] $*"; }

DIR=$(bash test/vscode/install.sh "$CS_VERSION" $NODE_VERSION | tail -1)
NODE_BIN=$(cat "$DIR/node-bin")
CS=$DIR/node_modules/.bin/code-server
[ -f dist/extension.js ] || npm run build

rm -rf "$ROOT" && mkdir -p "$ROOT"/{xdg/config,xdg/data,xdg/cache,ud/User,exts,artifacts,suite,harness}
# the drivers are ES modules: they find playwright-core next to them, not through NODE_PATH
cp test/vscode/exttest.mjs test/vscode/ui.mjs "$ROOT/harness/" && ln -s "$DIR/node_modules" "$ROOT/harness/node_modules"
export XDG_CONFIG_HOME=$ROOT/xdg/config XDG_DATA_HOME=$ROOT/xdg/data XDG_CACHE_HOME=$ROOT/xdg/cache

free_port() { node --import tsx -e 'require("./test/support/ports.ts").freePort().then(console.log)'; }
CS_PORT=$(free_port)
PG_PORT=$(free_port)
PG_PID="" CS_PID=""
cleanup() {
  [ -n "$CS_PID" ] && kill -- -"$CS_PID" 2>/dev/null || true
  if [ -n "$PG_PID" ]; then
    kill -TERM "$PG_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  PLAYGROUND_DIR=$ROOT/playground node --import tsx playground/main.ts down >/dev/null 2>&1 || true
}
trap cleanup EXIT

# 1. the playground (its own state dir and port, beside any playground the user runs)
t "start the playground on 127.0.0.1:$PG_PORT"
PLAYGROUND_DIR=$ROOT/playground PLAYGROUND_PORT=$PG_PORT setsid node --import tsx playground/main.ts > "$ROOT/artifacts/playground.log" 2>&1 &
PG_PID=$!
export KUBECONFIG=$ROOT/playground/kubeconfig
for _ in $(seq 1 300); do
  [ -f "$KUBECONFIG" ] && [ "$(kubectl get deploy api -n demo -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = "2" ] \
    && [ "$(kubectl get pod client -n demo -o jsonpath='{.status.phase}' 2>/dev/null)" = "Running" ] && break
  kill -0 "$PG_PID" 2>/dev/null || { cat "$ROOT/artifacts/playground.log"; exit 1; }
  sleep 0.2
done
kubectl get pods -n demo

# 2. the workspace: the sample app, a launch.json, and where the cluster is
cp -r test/vscode/workspace "$ROOT/ws"
mkdir -p "$ROOT/ws/.tether"
printf '{ "kubeconfig": "%s" }\n' "$KUBECONFIG" > "$ROOT/ws/.tether/config.json"
printf '{ "kubeconfig": "%s" }\n' "$KUBECONFIG" > "$ROOT/ws/e2e.json"

# 3. the extension as a user gets it: the VSIX of `npm run package`, installed as `code --install-extension` does
# (the UI scenario runs it; the mocha suite runs the same minified dist/ as a development extension); bundle the suite
t "npm run package + install"
VERSION=$(node -p 'require("./package.json").version')
npm run package -- --out "$ROOT/" > "$ROOT/artifacts/package.log" 2>&1 || { cat "$ROOT/artifacts/package.log"; exit 1; }
PATH=$NODE_BIN:$PATH "$CS" --user-data-dir "$ROOT/ud" --extensions-dir "$ROOT/exts" --install-extension "$ROOT/tether-$VERSION.vsix" > "$ROOT/artifacts/install.log" 2>&1 \
  || { cat "$ROOT/artifacts/install.log"; exit 1; }
EXT_DIR=$ROOT/exts/$(node -p 'const p = require("./package.json"); `${p.publisher}.${p.name}-${p.version}`')
[ -f "$EXT_DIR/dist/extension.js" ] || { echo "the VSIX did not install into $EXT_DIR"; cat "$ROOT/artifacts/install.log"; exit 1; }
node_modules/.bin/esbuild test/vscode/suite/index.ts test/vscode/suite/extension.suite.ts --bundle --platform=node --format=cjs \
  --external:vscode --external:mocha --outdir="$REPO/.e2e/$CS_VERSION/suite" --log-level=warning
cat > "$ROOT/ud/User/settings.json" <<'JSON'
{ "workbench.startupEditor": "none", "telemetry.telemetryLevel": "off", "update.mode": "none",
  "extensions.autoCheckUpdates": false, "extensions.autoUpdate": false, "security.workspace.trust.enabled": false,
  "debug.openDebug": "neverOpen", "debug.internalConsoleOptions": "neverOpen", "workbench.tips.enabled": false,
  "chat.disableAIFeatures": true, "chat.commandCenter.enabled": false, "git.openRepositoryInParentFolders": "never",
  "remote.autoForwardPorts": false }
JSON

# 4. code-server on loopback, in its own process group (its extension host outlives the browser)
t "start code-server $("$CS" --version 2>/dev/null | head -1) on 127.0.0.1:$CS_PORT"
PATH=$NODE_BIN:$PATH setsid "$CS" --bind-addr "127.0.0.1:$CS_PORT" --auth none --user-data-dir "$ROOT/ud" --extensions-dir "$ROOT/exts" \
  --disable-telemetry --disable-update-check --disable-workspace-trust --disable-getting-started-override "$ROOT/ws" > "$ROOT/artifacts/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$CS_PORT/healthz" && break; sleep 0.2; done
curl -sf -o /dev/null "http://127.0.0.1:$CS_PORT/healthz" || { cat "$ROOT/artifacts/code-server.log"; exit 1; }

t "mocha suite in the extension host"
suite=0 ui=0
CS_HOST=127.0.0.1:$CS_PORT WS_FOLDER=$ROOT/ws EXT_DEV_PATH=$REPO EXT_TESTS_PATH=$ROOT/suite/index.js EXT_TEST_TIMEOUT_MS=600000 LOGS_DIR=$ROOT/artifacts/exthost-logs \
  node "$ROOT/harness/exttest.mjs" > "$ROOT/artifacts/exttest.log" 2>&1 || suite=$?
cat "$ROOT/artifacts/exttest.log"
t "UI scenario"
printf '{ "kubeconfig": "%s" }\n' "$KUBECONFIG" > "$ROOT/ws/.tether/config.json"   # no target yet, whatever the suite left
CS_URL="http://127.0.0.1:$CS_PORT/?folder=$ROOT/ws" WS_DIR=$ROOT/ws ARTIFACTS=$ROOT/artifacts PLAYGROUND_DIR=$ROOT/playground \
  node "$ROOT/harness/ui.mjs" || ui=$?
# which part failed, with its exit code, on the last line (the one a failing test quotes)
fail=$([ $suite = 0 ] && [ $ui = 0 ] && echo 0 || echo 1)
t "done: $([ $fail = 0 ] && echo passed || echo FAILED) (extension-host suite exit $suite, UI scenario exit $ui); artifacts in $ROOT/artifacts"
exit $fail
