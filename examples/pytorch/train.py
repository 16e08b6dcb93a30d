"""Train a small CNN on scikit-learn's handwritten digits, logging to W&B as W&B's examples do.

The data (1,797 8x8 images of the digits 0-9) ships inside scikit-learn: nothing is downloaded,
so the script runs on compute nodes without internet. It runs on a GPU when one is visible
(under sweepherd each trial sees only its own, through CUDA_VISIBLE_DEVICES), else on the CPU.

The script is a plain W&B script: `wandb.init(config=defaults)`, the hyperparameters read back
from `wandb.config` (under a sweep they hold the sweep's values), and `wandb.log` once per
epoch with the validation loss the sweep minimises. It runs unchanged under `wandb agent`,
under sweepherd, or on its own (`python train.py`).

Set EXAMPLE_FAST=1 for a run of a few seconds (at most 3 epochs on a 512-image subset), as
the tests do.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import wandb

DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.001,
    "optimizer": "adam",
    "channels": 16,
    "dropout": 0.2,
    "seed": 0,
}


def make_model(channels: int, dropout: float) -> nn.Module:
    """Two 3x3 convolutions and a small classifier: 8x8 -> 4x4 after pooling."""
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def load_data(seed: int, fast: bool) -> tuple[torch.Tensor, ...]:
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    if fast:
        x_train, y_train = x_train[:512], y_train[:512]
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_val),
        torch.from_numpy(y_val),
    )


def main() -> None:
    fast = os.environ.get("EXAMPLE_FAST") == "1"
    run = wandb.init(config=DEFAULTS)
    config = wandb.config
    epochs = min(config.epochs, 3) if fast else config.epochs

    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x_train, y_train, x_val, y_val = (t.to(device) for t in load_data(config.seed, fast))
    model = make_model(config.channels, config.dropout).to(device)
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), device=device)
        train_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * len(batch)

        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = loss_fn(logits, y_val).item()
            val_accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        wandb.log(
            {
                "epoch": epoch,
                "train_loss": train_loss / len(x_train),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
        )
        print(f"epoch {epoch}: val_loss={val_loss:.4f} val_accuracy={val_accuracy:.3f}")
    run.finish()


if __name__ == "__main__":
    main()
