#!/usr/bin/env bash
# Opt-in native TensorFlow backend (`npm run setup:native`), built only from package registries:
#   1. TensorFlow's CPU wheel from PyPI into the tool venv (.tools/venv). It ships libtensorflow_cc.so.2 and
#      libtensorflow_framework.so.2, which export the TensorFlow C and eager C APIs (TF_*, TFE_*), and the C
#      headers under tensorflow/include.
#   2. @tensorflow/tfjs-node (same version as the project's @tensorflow/tfjs) and node-api-headers from npm,
#      with --ignore-scripts (its install script downloads libtensorflow from a host that is not a registry),
#      into a private prefix, .tools/tfjs-node, never into the project's node_modules.
#   3. tfjs-node's N-API binding, extended to set list(string) and list(type) op attributes (the fused ops need
#      them) and to read a tensor into an array the caller owns (scripts/tfjs-binding-patch.js), compiled with g++
#      against those headers and linked to the wheel's two
#      libraries (rpath through deps/lib, as tfjs-node's own binding.gyp lays it out), placed where
#      tfjs-node's loader looks for it (package.json "binary".module_path, resolved by node-pre-gyp).
# training/backend.ts then loads that private tfjs-node for DURABLE_TRAIN_BACKEND=tensorflow (and in 'auto').
# Idempotent: quick when the binding for these pinned versions is already built. Needs python3 (venv), a C++ compiler
# ($CXX, default g++).
#   --optional   what `npm start` runs: on any failure, one line saying why and that training continues on the
#                WebAssembly backend, and exit 0. Skipped when DURABLE_TRAIN_BACKEND names another backend.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OPTIONAL=
case "${1:-}" in
  '') ;;
  --optional) OPTIONAL=1 ;;
  *) echo "usage: scripts/setup-native.sh [--optional]" >&2; exit 2 ;;
esac
CXX=${CXX:-g++}

# Newest wheel checked against tfjs-node 4.22's binding: every TF_/TFE_ symbol it calls resolves, and the
# backend trains (test/integration/native-backend.test.ts).
TENSORFLOW_CPU_VERSION=2.21.0
NODE_API_HEADERS_VERSION=1.9.0
TOOLS=.tools
VENV=$TOOLS/venv
PREFIX=$TOOLS/tfjs-node
LOG=$TOOLS/setup-native.log

say() { echo "setup:native: $*" >&2; }
die() {
  if [ -n "$OPTIONAL" ]; then
    say "no native TensorFlow backend ($*); training continues on the WebAssembly backend (DURABLE_TRAIN_BACKEND=wasm skips this step)"
    exit 0
  fi
  say "FAILED: $*"
  exit 1
}

if [ -n "$OPTIONAL" ] && [ -n "${DURABLE_TRAIN_BACKEND:-}" ] && [ "$DURABLE_TRAIN_BACKEND" != tensorflow ] && [ "$DURABLE_TRAIN_BACKEND" != auto ]; then
  exit 0
fi
# In --optional mode any failed step ends in that one line, not in a failed `npm start`.
if [ -n "$OPTIONAL" ]; then trap 'die "a set-up step failed at line $LINENO of scripts/setup-native.sh (see $LOG)"' ERR; fi
# The compiler is needed only for a build (not when the binding is already built).
if [ ! -f "$PREFIX/built" ]; then
  command -v "$CXX" >/dev/null || die "no C++ compiler: $CXX is not on PATH (apt-get install g++, or set CXX)"
fi
TFJS_VERSION=$(node -p "require('@tensorflow/tfjs/package.json').version" 2>/dev/null) ||
  die "@tensorflow/tfjs is not installed in node_modules; run npm ci first"

# 1. The wheel.
mkdir -p "$TOOLS"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
installed=$("$VENV/bin/pip" show tensorflow-cpu 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed" != "$TENSORFLOW_CPU_VERSION" ]; then
  say "installing tensorflow-cpu==$TENSORFLOW_CPU_VERSION into $VENV (once: about 260 MB download, then the build; 1.5 min on the 2-core machine of docs/benchmarks.md; log: $LOG)"
  if [ -t 2 ]; then
    # On a terminal, pip's own progress bar shows the download.
    "$VENV/bin/pip" install --disable-pip-version-check --progress-bar on "tensorflow-cpu==$TENSORFLOW_CPU_VERSION" 2>"$LOG" >&2 ||
      die "pip install tensorflow-cpu==$TENSORFLOW_CPU_VERSION (see $LOG)"
  else
    "$VENV/bin/pip" install --disable-pip-version-check "tensorflow-cpu==$TENSORFLOW_CPU_VERSION" >"$LOG" 2>&1 ||
      die "pip install tensorflow-cpu==$TENSORFLOW_CPU_VERSION (see $LOG)"
  fi
fi
# The real path: links made through a symlinked .tools (a git worktree sharing the main checkout's) must not
# point into a worktree that is later removed.
TF_DIR=$(realpath "$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("tensorflow").origin))')")
for f in libtensorflow_cc.so.2 libtensorflow_framework.so.2 include/tensorflow/c/c_api.h include/tensorflow/c/eager/c_api.h; do
  [ -e "$TF_DIR/$f" ] || die "the tensorflow-cpu wheel has no $f in $TF_DIR"
done

# 2. tfjs-node's source and the N-API headers, privately.
PKG=$PREFIX/node_modules/@tensorflow/tfjs-node
BINDING_PATCH=attr-lists-1+read-into-1
STAMP="tfjs-node $TFJS_VERSION, tensorflow-cpu $TENSORFLOW_CPU_VERSION, node-api-headers $NODE_API_HEADERS_VERSION, napi $(node -p process.versions.napi), binding $BINDING_PATCH"
if [ -f "$PREFIX/built" ] && [ "$(cat "$PREFIX/built")" = "$STAMP" ] && [ -n "$(find "$PKG/lib" -name tfjs_binding.node 2>/dev/null)" ]; then
  # Re-point the wheel's headers and libraries (cheap; repairs links left dangling by a moved or removed venv path).
  ln -sfn "$TF_DIR/include" "$PKG/deps/include"
  ln -sf "$TF_DIR/libtensorflow_cc.so.2" "$TF_DIR/libtensorflow_framework.so.2" "$PKG/deps/lib/"
  say "already built ($STAMP)"
  exit 0
fi
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
echo '{ "name": "durable-train-tfjs-node", "private": true }' >"$PREFIX/package.json"
say "fetching @tensorflow/tfjs-node@$TFJS_VERSION and node-api-headers@$NODE_API_HEADERS_VERSION from npm into $PREFIX"
(cd "$PREFIX" && npm install --ignore-scripts --no-audit --no-fund --no-save --no-package-lock \
  "@tensorflow/tfjs-node@$TFJS_VERSION" "node-api-headers@$NODE_API_HEADERS_VERSION") >>"$LOG" 2>&1 ||
  die "npm install of @tensorflow/tfjs-node@$TFJS_VERSION (see $LOG)"
# tfjs-node must register its backend with the project's own tfjs, not with a private copy: drop the copies it
# brought, so that its require('@tensorflow/tfjs') resolves up the tree to <project>/node_modules.
find "$PREFIX/node_modules/@tensorflow" -mindepth 1 -maxdepth 1 ! -name tfjs-node -exec rm -rf {} +
rm -rf "$PKG/node_modules/@tensorflow"

# 3. The binding. Where node-pre-gyp (tfjs-node's loader) will look for it:
TARGET=$(cd "$PREFIX" && node -p "require('@mapbox/node-pre-gyp').find(require.resolve('@tensorflow/tfjs-node/package.json'))")
NAPI_BUILD_VERSION=$(basename "$(dirname "$TARGET")" | sed -n 's/^napi-v//p')
[ -n "$NAPI_BUILD_VERSION" ] || die "unexpected binding path from node-pre-gyp: $TARGET"
mkdir -p "$PKG/deps/lib" "$(dirname "$TARGET")"
ln -sfn "$TF_DIR/include" "$PKG/deps/include"
ln -sf "$TF_DIR/libtensorflow_cc.so.2" "$TF_DIR/libtensorflow_framework.so.2" "$PKG/deps/lib/"
node scripts/tfjs-binding-patch.js "$PKG/binding" >>"$LOG" 2>&1 ||
  die "could not extend tfjs-node's binding (list attributes, reading into an array; see $LOG)"
say "compiling tfjs_binding.node (N-API $NAPI_BUILD_VERSION) against tensorflow-cpu $TENSORFLOW_CPU_VERSION"
# Same sources, defines and rpath as tfjs-node's binding.gyp; N-API symbols resolve from node at load time.
"$CXX" -std=c++17 -O2 -fPIC -shared -DNAPI_VERSION="$NAPI_BUILD_VERSION" -DNDEBUG \
  -I"$PREFIX/node_modules/node-api-headers/include" -I"$PKG/deps/include" \
  "$PKG/binding/tfjs_backend.cc" "$PKG/binding/tfjs_binding.cc" \
  -o "$TARGET.tmp" \
  -Wl,-rpath,'$ORIGIN/../../deps/lib' -Wl,--as-needed \
  "$PKG/deps/lib/libtensorflow_cc.so.2" "$PKG/deps/lib/libtensorflow_framework.so.2" >>"$LOG" 2>&1 ||
  die "$CXX failed to compile the binding (see $LOG)"
# Every TF_*/TFE_* symbol the binding calls must come from the wheel: a C API mismatch shows up here.
missing=$(LD_LIBRARY_PATH= ldd -r "$TARGET.tmp" 2>&1 | grep -o 'undefined symbol: T[FE_]*[A-Za-z0-9_]*' | sort -u || true)
[ -z "$missing" ] || die "the wheel's C API lacks symbols tfjs-node $TFJS_VERSION needs: $missing"
mv "$TARGET.tmp" "$TARGET"

# Smoke test: load the private tfjs-node with the project's tfjs and run one op on the tensorflow backend.
TF_CPP_MIN_LOG_LEVEL=2 node -e "
  const tf = require('@tensorflow/tfjs');
  require('$ROOT/$PKG');
  tf.setBackend('tensorflow').then((ok) => {
    if (!ok || tf.getBackend() !== 'tensorflow') throw new Error('tensorflow backend did not initialize');
    const v = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0];
    if (v !== 11) throw new Error('matMul gave ' + v);
  });" >>"$LOG" 2>&1 || die "the built binding does not load or compute (see $LOG)"
echo "$STAMP" >"$PREFIX/built"
say "built $TARGET ($STAMP); use DURABLE_TRAIN_BACKEND=tensorflow"
