"""Loads a model exported by `durable-train export` (model.json + weights.bin, TF.js Layers format) into Keras with
the TensorFlow wheel only (no tensorflowjs package), predicts the given inputs and compares with the predictions
durable-train computed.

Usage: python check-export.py EXPORT_DIR CASES_JSON [EXPORT_DIR CASES_JSON ...]
  CASES_JSON: {"inputs": [[...example...], ...], "outputs": [[...], ...], "tolerance": 1e-5, "labels"?: [0, 1, ...]}
  With labels (a binary classifier), the line also gives kerasLoss: Keras's binary cross-entropy of its predictions.
Prints one JSON line per model {"dir", "ok", "maxAbsDiff", "keras"}; exits 1 when a prediction differs by more than
the tolerance.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402


def load(export_dir):
    with open(os.path.join(export_dir, "model.json")) as f:
        spec = json.load(f)
    topology = spec["modelTopology"]
    config = topology.get("model_config", topology)
    # tfjs writes the Keras 2 config format (batch_input_shape, no module names): Keras 3 reads it as it reads a
    # legacy .h5 file's config.
    from keras.src.legacy.saving import saving_utils

    model = saving_utils.model_from_config(config)
    # The weights in manifest order, each float32 little-endian, concatenated over the listed files.
    by_name = {}
    for group in spec["weightsManifest"]:
        data = b"".join(open(os.path.join(export_dir, p), "rb").read() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if w["dtype"] != "float32":
                sys.exit(f"weight {w['name']}: dtype {w['dtype']} is not float32")
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            by_name[w["name"]] = np.frombuffer(data, "<f4", n, offset).reshape(w["shape"])
            offset += 4 * n
    for layer in model.layers:
        if not layer.weights:
            continue
        values = []
        for v in layer.weights:
            key = f"{layer.name}/{v.name.split('/')[-1]}"
            # Keras 3 names DepthwiseConv2D's kernel `kernel`; tfjs (as tf_keras) `depthwise_kernel`.
            if key not in by_name and type(layer).__name__ == "DepthwiseConv2D" and key.endswith("/kernel"):
                key = f"{layer.name}/depthwise_kernel"
            if key not in by_name:
                sys.exit(f"layer {layer.name}: no weight {key} in the export (has {sorted(by_name)})")
            values.append(by_name[key])
        layer.set_weights(values)
    return model


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    failed = False
    for export_dir, cases_path in zip(args[::2], args[1::2]):
        with open(cases_path) as f:
            cases = json.load(f)
        model = load(export_dir)
        got = model.predict(np.asarray(cases["inputs"], dtype="float32"), verbose=0)
        diff = float(np.max(np.abs(got - np.asarray(cases["outputs"], dtype="float32"))))
        ok = diff <= cases.get("tolerance", 1e-5)
        failed = failed or not ok
        out = {"dir": export_dir, "ok": ok, "maxAbsDiff": diff, "keras": keras.__version__}
        if "labels" in cases:
            # A binary classifier: Keras's own binary cross-entropy of its predictions, to compare with the run's loss.
            labels = np.asarray(cases["labels"], dtype="float32").reshape(-1, 1)
            out["kerasLoss"] = float(np.mean(keras.losses.binary_crossentropy(labels, got)))
        print(json.dumps(out))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
