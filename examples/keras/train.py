"""Train a small Keras 3 CNN on scikit-learn's handwritten digits, logging to W&B as W&B's
examples do.

The data (1,797 8x8 images of the digits 0-9) ships inside scikit-learn: nothing is downloaded.
Keras 3 runs on whichever backend is installed: KERAS_BACKEND when set, else the first of
TensorFlow, JAX and PyTorch found here.

The script is a plain W&B script: `wandb.init(config=defaults)`, the hyperparameters read back
from `wandb.config` (under a sweep they hold the sweep's values), and `wandb.log` once per
epoch (from a Keras callback) with the validation loss the sweep minimises. It runs unchanged
under `wandb agent`, under sweepherd, or on its own (`python train.py`).

Set EXAMPLE_FAST=1 for a short run (at most 3 epochs on a 512-image subset), as the tests do.
"""

from __future__ import annotations

import importlib.util
import os

if "KERAS_BACKEND" not in os.environ:  # Keras 3 would insist on TensorFlow
    for _backend in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(_backend) is not None:
            os.environ["KERAS_BACKEND"] = _backend
            break

import keras
import numpy as np
from keras import layers
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import wandb

DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 0.001,
    "filters": 16,
    "units": 64,
    "dropout": 0.2,
    "seed": 0,
}


def make_model(filters: int, units: int, dropout: float, learning_rate: float) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(filters, 3, padding="same", activation="relu"),
            layers.Conv2D(2 * filters, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(dropout),
            layers.Dense(units, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    fast = os.environ.get("EXAMPLE_FAST") == "1"
    run = wandb.init(config=DEFAULTS)
    config = wandb.config
    epochs = min(config.epochs, 3) if fast else config.epochs
    keras.utils.set_random_seed(config.seed)

    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.2, random_state=config.seed, stratify=labels
    )
    if fast:
        x_train, y_train = x_train[:512], y_train[:512]

    model = make_model(config.filters, config.units, config.dropout, config.learning_rate)
    log_epoch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: wandb.log(
            {
                "epoch": epoch,
                "loss": logs["loss"],
                "accuracy": logs["accuracy"],
                "val_loss": logs["val_loss"],
                "val_accuracy": logs["val_accuracy"],
            }
        )
    )
    model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=config.batch_size,
        callbacks=[log_epoch],
        verbose=2,
    )
    run.finish()


if __name__ == "__main__":
    main()
