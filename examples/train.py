"""A small training loop logged with runlog.

Trains a two-layer network on a synthetic two-spirals problem in plain
Python (no numpy, no framework), logging the training loss and accuracy
every step, validation metrics every epoch, the learning-rate schedule and
the best validation accuracy as a summary.

    python examples/train.py --root demo

The run id is printed last, so a script can pick it up:
`runlog replay RUN --root demo --state`.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time

import runlog


def spirals(n: int, noise: float, rnd: random.Random):
    """n points per class on two interleaved spirals."""
    data = []
    for label in (0, 1):
        for i in range(n):
            r = i / n * 5.0 + 0.5
            t = 0.75 * i / n * 2 * math.pi + label * math.pi
            x = r * math.sin(t) + rnd.gauss(0, noise)
            y = r * math.cos(t) + rnd.gauss(0, noise)
            data.append(((x / 5.0, y / 5.0), label))
    rnd.shuffle(data)
    return data


class Net:
    """2 -> hidden (tanh) -> 1 (sigmoid), trained with plain SGD."""

    def __init__(self, hidden: int, rnd: random.Random):
        s = 1.0 / math.sqrt(2)
        self.w1 = [[rnd.gauss(0, s) for _ in range(2)] for _ in range(hidden)]
        self.b1 = [0.0] * hidden
        s = 1.0 / math.sqrt(hidden)
        self.w2 = [rnd.gauss(0, s) for _ in range(hidden)]
        self.b2 = 0.0

    def forward(self, x):
        h = [math.tanh(w[0] * x[0] + w[1] * x[1] + b) for w, b in zip(self.w1, self.b1)]
        z = sum(w * v for w, v in zip(self.w2, h)) + self.b2
        p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
        return h, p

    def step(self, batch, lr: float):
        """One SGD step on batch; returns (loss, accuracy, grad norm)."""
        hidden = len(self.b1)
        gw1 = [[0.0, 0.0] for _ in range(hidden)]
        gb1 = [0.0] * hidden
        gw2 = [0.0] * hidden
        gb2 = 0.0
        loss = 0.0
        correct = 0
        for x, y in batch:
            h, p = self.forward(x)
            q = min(max(p, 1e-12), 1.0 - 1e-12)
            loss -= math.log(q) if y else math.log(1.0 - q)
            correct += (p >= 0.5) == bool(y)
            d = p - y
            gb2 += d
            for j in range(hidden):
                gw2[j] += d * h[j]
                dh = d * self.w2[j] * (1.0 - h[j] * h[j])
                gb1[j] += dh
                gw1[j][0] += dh * x[0]
                gw1[j][1] += dh * x[1]
        n = len(batch)
        norm = math.sqrt(
            gb2 * gb2
            + sum(g * g for g in gw2)
            + sum(g * g for g in gb1)
            + sum(a * a + b * b for a, b in gw1)
        ) / n
        self.b2 -= lr * gb2 / n
        for j in range(hidden):
            self.w2[j] -= lr * gw2[j] / n
            self.b1[j] -= lr * gb1[j] / n
            self.w1[j][0] -= lr * gw1[j][0] / n
            self.w1[j][1] -= lr * gw1[j][1] / n
        return loss / n, correct / n, norm

    def evaluate(self, data):
        loss = 0.0
        correct = 0
        for x, y in data:
            _, p = self.forward(x)
            p = min(max(p, 1e-12), 1.0 - 1e-12)
            loss -= math.log(p) if y else math.log(1.0 - p)
            correct += (p >= 0.5) == bool(y)
        return loss / len(data), correct / len(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="runlog root (default $RUNLOG_DIR or ~/.runlog)")
    ap.add_argument("--project", default="spirals")
    ap.add_argument("--name", default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    rnd = random.Random(args.seed)
    data = spirals(400, 0.08, rnd)
    split = int(len(data) * 0.8)
    train, val = data[:split], data[split:]
    config = {
        "lr": args.lr,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "model": {"layers": [2, args.hidden, 1], "activation": "tanh"},
        "data": {"name": "two-spirals", "train": len(train), "val": len(val)},
        "seed": args.seed,
    }
    with runlog.init(
        project=args.project,
        name=args.name or f"mlp-h{args.hidden}-lr{args.lr:g}",
        tags=["example", "spirals"],
        config=config,
        dir=args.root,
    ) as run:
        print(f"run {run.id}: {len(train)} training and {len(val)} validation points")
        net = Net(args.hidden, rnd)
        steps_per_epoch = math.ceil(len(train) / args.batch_size)
        total = steps_per_epoch * args.epochs
        best = 0.0
        step = 0
        start = time.monotonic()
        for epoch in range(args.epochs):
            rnd.shuffle(train)
            for i in range(0, len(train), args.batch_size):
                # Cosine schedule from lr down to lr/20.
                lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / total)))
                loss, acc, gnorm = net.step(train[i : i + args.batch_size], lr)
                run.log(
                    {"train": {"loss": loss, "acc": acc, "grad_norm": gnorm}, "lr": lr},
                    step=step,
                )
                step += 1
            val_loss, val_acc = net.evaluate(val)
            # Validation joins the epoch's last row.
            run.log({"val/loss": val_loss, "val/acc": val_acc, "epoch": epoch}, step=step - 1)
            if val_acc > best:
                best = val_acc
                run.summary.update({"best_val_acc": best, "best_epoch": epoch})
            print(
                f"epoch {epoch + 1}/{args.epochs}  train loss {loss:.4f}  "
                f"val loss {val_loss:.4f}  val acc {val_acc:.3f}"
            )
        if best < 0.6:
            run.alert("poor accuracy", f"best validation accuracy {best:.3f}", level="warn")
        run.summary["train_seconds"] = time.monotonic() - start
        run.flush()
        stats = run.stats()
        print(f"logged {stats['acked']} records durably ({step} steps)")
    print(run.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
