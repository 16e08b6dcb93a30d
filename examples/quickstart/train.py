"""A tiny training script for the quickstart: fits y = 3x + 2 with mini-batch SGD.

It takes its hyperparameters as command-line flags (`--lr=0.01 --batch_size=32`), exactly as
`wandb agent` passes them, and reports the validation loss after every epoch with
`sweepherd.log` — no wandb needed. Runs in well under a second, on the standard library alone.
"""

from __future__ import annotations

import argparse
import random

import sweepherd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    data = [(x, 3 * x + 2 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(512))]
    train, val = data[:448], data[448:]
    w, b = 0.0, 0.0
    for epoch in range(args.epochs):
        rng.shuffle(train)
        for start in range(0, len(train), args.batch_size):
            batch = train[start : start + args.batch_size]
            grad_w = sum(2 * (w * x + b - y) * x for x, y in batch) / len(batch)
            grad_b = sum(2 * (w * x + b - y) for x, y in batch) / len(batch)
            w -= args.lr * grad_w
            b -= args.lr * grad_b
        val_loss = sum((w * x + b - y) ** 2 for x, y in val) / len(val)
        sweepherd.log({"epoch": epoch, "val_loss": val_loss})
    print(f"lr={args.lr} batch_size={args.batch_size}: w={w:.3f} b={b:.3f} val_loss={val_loss:.5f}")


if __name__ == "__main__":
    main()
