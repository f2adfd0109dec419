"""Loads a durable-train export (TF.js Layers model.json + weights.bin) in Keras and predicts rows read as JSON from
stdin ([[f1, f2, ...], ...]); prints the outputs as one JSON line. The topology goes through Keras's own
legacy config loader (tfjs-layers writes Keras's pre-3 JSON, without module keys, as H5 files hold it; Keras 3 reads
that with the loader it uses for H5); each layer's weights are taken from the weights manifest by name.

    .tools/venv/bin/python test/helpers/keras_predict.py EXPORT_DIR < rows.json
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import numpy as np
    from keras.src.legacy.saving import saving_utils

    out = sys.argv[1]
    with open(os.path.join(out, "model.json")) as f:
        model_json = json.load(f)
    topology = model_json["modelTopology"]
    layers = topology["config"]["layers"]
    # tfjs-layers puts a sequential model's input shape on its first layer (batch_input_shape, as tf.keras 2 did);
    # Keras 3 reads that key as a shape without the batch axis, so it is given as the InputLayer Keras 3 writes.
    first = layers[0]["config"]
    if layers[0]["class_name"] != "InputLayer" and "batch_input_shape" in first:
        shape = first.pop("batch_input_shape")
        layers.insert(0, {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": "input"}})
    model = saving_utils.model_from_config(topology)
    weights = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(open(os.path.join(out, p), "rb").read() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            assert spec["dtype"] == "float32", spec
            weights[spec["name"]] = np.frombuffer(data, "<f4", count, offset).reshape(spec["shape"])
            offset += 4 * count
    roles = ["kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "embeddings"]
    for layer in model.layers:
        if not layer.weights:
            continue
        by_role = {w.path.split("/")[-1]: w for w in layer.weights}
        values = []
        for w in layer.weights:
            role = w.path.split("/")[-1]
            assert role in roles, w.path
            values.append(weights[f"{layer.name}/{role}"])
        assert len(by_role) == len(values)
        layer.set_weights(values)
    rows = np.asarray(json.load(sys.stdin), dtype="float32")
    print(json.dumps(model.predict(rows, verbose=0).tolist()))


if __name__ == "__main__":
    main()
