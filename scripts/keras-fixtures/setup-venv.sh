#!/usr/bin/env bash
# Creates the Python environment the Keras fixture script needs (git-ignored: .venv-keras/ in the repository root).
# tensorflowjs 4.22 pins old dependencies: installed with --no-deps, beside TensorFlow 2.21, tf_keras and jax, it
# converts Keras 3 and tf_keras models. Its converter modules import tensorflow_decision_forests and flax at load time
# (only for models of those kinds, which the fixtures are not); empty stub modules stand in for them.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-keras}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q tensorflow-cpu==2.21.0 tf-keras==2.21.0 tensorflow-hub jax
"$VENV/bin/pip" install -q --no-deps tensorflowjs==4.22.0
SITE=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
for stub in tensorflow_decision_forests flax; do
  [ -e "$SITE/$stub" ] || { mkdir -p "$SITE/$stub" && echo '# stub: see scripts/keras-fixtures/setup-venv.sh' > "$SITE/$stub/__init__.py"; }
done
"$VENV/bin/python" -c 'import tensorflowjs, tf_keras, keras; print("tensorflowjs", tensorflowjs.__version__, "keras", keras.__version__)'
