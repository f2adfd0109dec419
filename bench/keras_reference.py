"""Keras / TensorFlow-CPU reference for bench/backends.ts: the mnist-cnn network trained at batch 64.

The same layers as training/models.ts: conv 32 3x3 relu -> maxpool 2 -> conv 64 3x3 relu -> maxpool 2 ->
dropout 0.25 -> flatten -> dense 128 relu -> dropout 0.25 -> dense 10, softmax cross-entropy, Adam (lr 1e-3).
Data are MNIST-shaped random images and labels made here (throughput does not depend on the values, and Keras's
MNIST loader downloads from outside the package registries).

Run from the tool venv that `npm run setup:native` fills (it installs the tensorflow-cpu wheel):

    .tools/venv/bin/python bench/keras_reference.py [--seconds 8] [--intra-op-threads N --inter-op-threads N]

Prints one JSON object on stdout. Steps are timed after one warm-up epoch (tracing, allocation), as
`model.fit` runs them: whole epochs of compiled train steps, the way a Keras user trains.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH = 64


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0, help="time budget for the measured epochs")
    ap.add_argument("--steps-per-epoch", type=int, default=20)
    ap.add_argument("--intra-op-threads", type=int, default=0, help="0: TensorFlow's default (the core count)")
    ap.add_argument("--inter-op-threads", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    keras = tf.keras

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.25),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    rng = np.random.default_rng(0)
    n = BATCH * args.steps_per_epoch
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=(n,), dtype=np.int32)

    t = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    warmup_s = time.perf_counter() - t

    steps = 0
    t = time.perf_counter()
    c = time.process_time()
    while steps == 0 or time.perf_counter() - t < args.seconds:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        steps += args.steps_per_epoch
    elapsed = time.perf_counter() - t
    cpu = time.process_time() - c
    ms = elapsed * 1000 / steps

    out = {
        "bench": "keras-reference",
        "model": "mnist-cnn",
        "tensorflow": tf.__version__,
        "keras": keras.__version__ if hasattr(keras, "__version__") else None,
        "python": sys.version.split()[0],
        "batch": BATCH,
        "intraOpThreads": tf.config.threading.get_intra_op_parallelism_threads(),
        "interOpThreads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "steps": steps,
        "warmupEpochSeconds": round(warmup_s, 2),
        "msPerStep": round(ms, 1),
        # CPU time of every thread of the process per step: steadier than wall time on a shared machine.
        "cpuMsPerStep": round(cpu * 1000 / steps, 1),
        "samplesPerSec": round(BATCH * 1000 / ms, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
