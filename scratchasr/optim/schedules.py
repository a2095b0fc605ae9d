"""Learning-rate schedules: callables ``step -> lr`` (steps counted from 0), plus NewBob (driven by
dev scores). Set ``opt.lr = schedule(step)`` before ``opt.step``."""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["constant", "exponential_decay", "noam", "cosine_with_warmup", "NewBob"]


def _pos(name, v, allow_zero=False):
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: expected a {'non-negative' if allow_zero else 'positive'} number, got {v}")
    return v


def _step(step) -> int:
    if int(step) != step or step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step}")
    return int(step)


def constant(lr: float):
    lr = _pos("lr", lr, allow_zero=True)
    return lambda step: (_step(step), lr)[1]


def exponential_decay(lr: float, gamma: float):
    """``lr * gamma ** step``  [optim:exp-decay]."""
    lr, gamma = _pos("lr", lr, True), _pos("gamma", gamma)
    return lambda step: lr * gamma ** _step(step)


def noam(lr: float, d_model: int, warmup: int):
    """Transformer schedule; ``step`` 0 is the first update (evaluated at s = step + 1)  [optim:noam]."""
    lr, d, w = _pos("lr", lr, True), _pos("d_model", d_model), _pos("warmup", warmup)

    def f(step):
        s = _step(step) + 1
        return lr * d ** -0.5 * min(s ** -0.5, s * w ** -1.5)
    return f


def cosine_with_warmup(lr: float, total_steps: int, warmup: int = 0, min_lr: float = 0.0):
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total_steps``.

    [optim:cosine]
    """
    lr, min_lr = _pos("lr", lr, True), _pos("min_lr", min_lr, True)
    total, warmup = int(total_steps), int(warmup)
    if warmup < 0 or total <= warmup:
        raise ValueError(f"total_steps: expected total_steps > warmup >= 0, got {total_steps}, {warmup}")

    def f(step):
        s = _step(step)
        if s < warmup:
            return lr * (s + 1) / warmup
        p = min(1.0, (s - warmup) / (total - warmup))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))
    return f


class NewBob:
    """Halve the rate when the dev score stops improving; keep halving once started  [optim:newbob].

    ``update(score)`` after each epoch (lower is better, e.g. PER) returns the new rate. ``threshold``
    is the relative improvement below which an epoch counts as a plateau; the rate is reduced once more
    than ``patience`` plateau epochs follow each other (``patience=0``: at the first one).
    """

    def __init__(self, lr: float, factor: float = 0.5, patience: int = 0, threshold: float = 0.0025,
                 min_lr: float = 0.0, ramp: bool = True) -> None:
        self.lr = _pos("lr", lr)
        self.factor = _pos("factor", factor)
        if self.factor >= 1:
            raise ValueError(f"factor: expected a value in (0, 1), got {factor}")
        self.threshold = _pos("threshold", threshold, True)
        self.min_lr = _pos("min_lr", min_lr, True)
        self.ramp = bool(ramp)
        if isinstance(patience, bool) or int(patience) != patience or patience < 0:
            raise ValueError(f"patience: expected an integer >= 0, got {patience}")
        self.patience = int(patience)  # plateau epochs tolerated before the first halving
        self.bad_epochs = 0
        self.best: Optional[float] = None
        self.ramping = False

    def update(self, score: float) -> float:
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(f"score: expected a finite dev score, got {score}")
        if self.best is None:
            self.best = score
            return self.lr
        improvement = (self.best - score) / max(abs(self.best), 1e-12)
        self.bad_epochs = self.bad_epochs + 1 if improvement < self.threshold else 0
        if self.ramping or self.bad_epochs > self.patience:
            self.lr = max(self.min_lr, self.lr * self.factor)
            self.ramping = self.ramp
            self.bad_epochs = 0
        self.best = min(self.best, score)
        return self.lr

    def state_dict(self) -> dict:
        return dict(lr=self.lr, best=self.best, ramping=self.ramping, bad_epochs=self.bad_epochs)

    def load_state_dict(self, s: dict) -> None:
        self.lr, self.best, self.ramping = float(s["lr"]), s["best"], bool(s["ramping"])
        self.bad_epochs = int(s.get("bad_epochs", 0))
