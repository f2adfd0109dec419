"""Builds small Keras models with fixed seeds and converts them with the tensorflowjs converter into
test/fixtures/keras/<name>/ (model.json + weight shards), as a user would bring them to durable-train.

Run (from the repository root; setup-venv.sh creates the environment once):
    scripts/keras-fixtures/setup-venv.sh
    .venv-keras/bin/python scripts/keras-fixtures/make.py            # Keras 3 fixtures
    TF_USE_LEGACY_KERAS=1 .venv-keras/bin/python scripts/keras-fixtures/make.py --legacy   # tf_keras fixtures
    .venv-keras/bin/python scripts/keras-fixtures/make.py --only cnn   # one Keras 3 fixture

Fixtures (each under 200 KB):
  mlp-bn-l2      Keras 3 Sequential MLP: Flatten, Dense + L2 kernel regularizer, BatchNormalization, softmax (MNIST)
  cnn            Keras 3 Sequential CNN: Conv2D, MaxPooling2D, Dropout, Dense (MNIST)
  mlp-bn-l2-tfk  the MLP through tf_keras (TF_USE_LEGACY_KERAS=1), the Keras 2 format
  residual-cnn   Keras 3 Functional: Conv2D into two branches joined by Add (MNIST)
  lstm-text      Keras 3 Sequential: Embedding + LSTM on integer sequences (length 20, vocabulary 50), 2 classes
  binary         Keras 3 Sequential: 30 features, Dense + one sigmoid unit
  separable-cnn  Keras 3 Sequential: DepthwiseConv2D, SeparableConv2D (strides, depth multipliers), pooling (MNIST)
The model files are what the converter writes: nothing is edited afterwards.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "keras")


def keras_modules(legacy):
    if legacy:
        if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
            sys.exit("--legacy needs TF_USE_LEGACY_KERAS=1 in the environment (set before TensorFlow is imported)")
        import tf_keras as keras
    else:
        import keras
    import tensorflow as tf

    return keras, tf


def mlp(keras, reg_l2=1e-3):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Flatten(name="flat"),
            layers.Dense(24, name="feat1", kernel_regularizer=keras.regularizers.L2(reg_l2)),
            layers.BatchNormalization(name="bn1"),
            layers.Activation("relu", name="relu1"),
            layers.Dense(10, activation="softmax", name="out"),
        ],
        name="mlp",
    )


def cnn(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(8, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Dropout(0.25, name="drop1"),
            layers.Flatten(name="flat"),
            layers.Dense(10, activation="softmax", name="out"),
        ],
        name="cnn",
    )


def residual_cnn(keras):
    layers = keras.layers
    x = keras.Input(shape=(28, 28, 1), name="image")
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(x)
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="branch1")(h)
    b = layers.Conv2D(8, 3, padding="same", name="branch2")(b)
    h = layers.Add(name="add")([h, b])
    h = layers.Activation("relu", name="relu")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    y = layers.Dense(10, activation="softmax", name="out")(h)
    return keras.Model(x, y, name="residual")


def lstm_text(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(20,)),
            layers.Embedding(50, 8, name="embed"),
            layers.LSTM(12, name="lstm"),
            layers.Dense(2, activation="softmax", name="out"),
        ],
        name="text",
    )


def binary(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(30,)),
            layers.Dense(16, activation="relu", name="hidden"),
            layers.Dense(1, activation="sigmoid", name="out"),
        ],
        name="binary",
    )


def separable_cnn(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.DepthwiseConv2D(3, depth_multiplier=4, padding="same", activation="relu", name="dw1"),
            layers.SeparableConv2D(8, 3, strides=2, depth_multiplier=2, activation="relu", name="sep1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.SeparableConv2D(12, 3, padding="same", use_bias=False, name="sep2"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(10, activation="softmax", name="out"),
        ],
        name="separable",
    )


def convert(tf, keras, model, name, legacy):
    import tensorflowjs as tfjs

    out = os.path.join(OUT, name)
    shutil.rmtree(out, ignore_errors=True)
    if legacy:
        tfjs.converters.save_keras_model(model, out)
    else:
        # The documented command line path: a .keras file through tensorflowjs_converter's keras_keras input format (tensorflowjs_converter --input_format=keras_keras --output_format=tfjs_layers_model model.keras out/).
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, f"{name}.keras")
            model.save(src)
            from tensorflowjs.converters import converter

            converter.convert(["--input_format=keras_keras", "--output_format=tfjs_layers_model", src, out])
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    if size > 200_000:
        sys.exit(f"{name}: {size} bytes, over the 200 KB budget")
    print(json.dumps({"fixture": name, "bytes": size, "keras": keras.__version__, "tensorflow": tf.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--legacy", action="store_true", help="tf_keras (TF_USE_LEGACY_KERAS=1) fixtures")
    ap.add_argument("--only", help="regenerate only this Keras 3 fixture")
    args = ap.parse_args()
    keras, tf = keras_modules(args.legacy)
    keras.utils.set_random_seed(1234)
    if args.legacy:
        convert(tf, keras, mlp(keras), "mlp-bn-l2-tfk", True)
        return
    for name, build in [
        ("mlp-bn-l2", mlp),
        ("cnn", cnn),
        ("residual-cnn", residual_cnn),
        ("lstm-text", lstm_text),
        ("binary", binary),
        ("separable-cnn", separable_cnn),
    ]:
        if args.only and name != args.only:
            continue
        keras.utils.set_random_seed(1234)
        convert(tf, keras, build(keras), name, False)


if __name__ == "__main__":
    main()
