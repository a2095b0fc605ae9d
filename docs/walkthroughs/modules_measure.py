"""Numbers quoted in docs/walkthroughs/modules.md: names, the cache stack and its failure mode, gradient
accumulation, a whole-model finite-difference check, and one hand-written training step.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        .venv/bin/python docs/walkthroughs/modules_measure.py
"""

from __future__ import annotations

import time

import numpy as np

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.nn import Linear, ReLU, Sequential
from scratchasr.optim import Adam, clip_grad_norm
from scratchasr.testing import model_gradcheck


def names_and_caches():
    print("== a Sequential of modules: dotted names, one cache per forward")
    rng = np.random.default_rng(0)
    net = Sequential(Linear(3, 4, rng=rng, dtype=np.float64), ReLU(), Linear(4, 2, rng=rng, dtype=np.float64))
    print("  parameters:", {k: v.shape for k, v in net.parameters().items()})
    x = rng.standard_normal((2, 5, 3))
    lengths = np.array([5, 3])
    y, _ = net(x, lengths)
    stacks = lambda: {n.rstrip(".") or "net": len(m._caches) for n, m in net.named_modules()}  # noqa: E731
    print("  caches after one forward:", stacks())
    net.backward(np.ones_like(y))
    print("  caches after backward:   ", stacks())
    g1 = {k: v.copy() for k, v in net.gradients().items()}
    for _ in range(2):                        # two forward/backward pairs without zero_grad: gradients add
        y, _ = net(x, lengths)
        net.backward(np.ones_like(y))
    d = max(np.abs(net.gradients()[k] - 3 * g1[k]).max() for k in g1)
    print(f"  after two more forward/backward pairs: grads = 3 x the first (max abs diff {d:.1e})")
    net.zero_grad()
    net(x, lengths)
    net(x, lengths)
    net.backward(np.ones_like(y))
    try:
        net.zero_grad()
    except RuntimeError as e:
        print(f"  forward twice, backward once, zero_grad: RuntimeError: {e}")
    net.clear_caches()
    print(f"  padded frames: max |dx[1, 3:]| = {np.abs(net_dx(net, x, lengths)[1, 3:]).max()}")


def net_dx(net, x, lengths):
    net.zero_grad()
    y, _ = net(x, lengths)
    return net.backward(np.random.default_rng(1).standard_normal(y.shape))


def whole_model():
    print("\n== model_gradcheck: a whole registered model through forward_loss / backward (float64)")
    rng = np.random.default_rng(0)
    model = models.build("ctc_blstm", input_dim=4, vocab_size=5, dtype=np.float64, seed=0, hidden=4,
                         num_layers=1, dropout=0.0)
    batch = make_batch([rng.standard_normal((9, 4)), rng.standard_normal((6, 4))], [[1, 2, 2], [4]])
    print(f"  ctc_blstm, hidden 4, {model.num_parameters()} parameters in {len(model.parameters())} tensors, "
          f"2 utterances of 9 and 6 frames")
    t0 = time.perf_counter()
    report = model_gradcheck(model, batch, feats=True)
    worst = max(report.checks, key=lambda c: c.max_rel_error)
    print(f"  ok {report.ok}: {sum(c.n_checks for c in report.checks)} checks, worst relative error "
          f"{worst.max_rel_error:.2e} ({worst.name}), {time.perf_counter() - t0:.1f} s")
    return model, batch


def one_step(model, batch):
    print("\n== one training step by hand (what the trainer does per batch)")
    opt = Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        model.zero_grad()
        loss, stats = model.forward_loss(batch)               # (B,) per-utterance loss
        model.backward(np.full(loss.shape, 1.0 / len(loss)))  # d(mean loss)/d(per-utterance loss)
        norm = clip_grad_norm(model.gradients(), 5.0)
        opt.step(model.gradients())
        print(f"  step {step}: mean loss {loss.mean():.4f}, gradient norm {norm:.4f}")


if __name__ == "__main__":
    names_and_caches()
    one_step(*whole_model())
