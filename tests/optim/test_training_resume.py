"""Modules + optimizer + clipping + schedule + checkpoint together: the loss falls, and a run interrupted
and resumed from a checkpoint (parameters, Adam moments, step, dropout RNG) ends bit-identical."""

import numpy as np

from scratchasr.io import load_checkpoint, rng_from_state, rng_state, save_checkpoint
from scratchasr.nn import Dropout, LayerNorm, Linear, Sequential, Swish
from scratchasr.optim import AdamW, clip_grad_norm, cosine_with_warmup


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    net = Sequential(Linear(4, 16, rng=rng, dtype=np.float64), LayerNorm(16, dtype=np.float64), Swish(),
                     Dropout(0.1), Linear(16, 1, rng=rng, dtype=np.float64))
    data = np.random.default_rng(99)
    x = data.normal(size=(64, 4))
    y = np.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3]
    return net, x, y


def _train(net, opt, x, y, steps, drop_rng, t0=0):
    sched = cosine_with_warmup(0.05, total_steps=60, warmup=5)
    losses = []
    for t in range(t0, t0 + steps):
        opt.lr = sched(t)
        net.zero_grad()
        net[3].rng = drop_rng
        out, _ = net(x)
        diff = out - y
        losses.append(float(np.mean(diff ** 2)))
        net.backward(2 * diff / diff.size)
        clip_grad_norm(net.gradients(), 1.0)
        opt.step(net.gradients())
    return losses


def test_loss_falls_and_resume_is_bit_exact(tmp_path):
    # one uninterrupted run of 40 steps
    net, x, y = _setup()
    drop = np.random.default_rng(7)
    opt = AdamW(net.parameters(), weight_decay=0.01)
    full = _train(net, opt, x, y, 40, drop)
    assert full[-1] < 0.3 * full[0]

    # the same run interrupted after 25 steps, checkpointed, and resumed into fresh objects
    net2, _, _ = _setup()
    drop2 = np.random.default_rng(7)
    opt2 = AdamW(net2.parameters(), weight_decay=0.01)
    _train(net2, opt2, x, y, 25, drop2)
    ck = tmp_path / "ck.npz"
    save_checkpoint(ck, net2.state_dict(), optimizer_state=opt2.state_dict(),
                    meta={"step": 25, "drop_rng": rng_state(drop2)})
    params, opt_state, meta = load_checkpoint(ck)
    net3, _, _ = _setup(seed=123)  # different initial weights: all must come from the checkpoint
    net3.load_state_dict(params)
    opt3 = AdamW(net3.parameters(), lr=1.0, weight_decay=0.5)
    opt3.load_state_dict(opt_state)
    assert opt3.t == 25 and opt3.weight_decay == 0.01
    drop3 = rng_from_state(meta["drop_rng"])
    _train(net3, opt3, x, y, 15, drop3, t0=meta["step"])
    for (k, a), (_, b) in zip(net.named_parameters(), net3.named_parameters()):
        np.testing.assert_array_equal(a, b, err_msg=k)
