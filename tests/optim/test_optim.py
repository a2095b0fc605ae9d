"""Each update rule against a hand-computed step, torch.optim oracles, clipping and schedules."""

import math

import numpy as np
import pytest

from scratchasr.nn import Module
from scratchasr.optim import (SGD, Adam, AdamW, NewBob, clip_grad_norm, constant, cosine_with_warmup,
                              exponential_decay, noam)


def _pg():
    p = {"w": np.array([1.0, -2.0, 0.5]), "b": np.array([[0.25]])}
    g = {"w": np.array([0.5, 0.1, -1.0]), "b": np.array([[2.0]])}
    return p, g


def test_sgd_plain_and_weight_decay_by_hand():
    p, g = _pg()
    w0 = p["w"].copy()
    SGD(p, lr=0.1, weight_decay=0.01).step(g)
    np.testing.assert_allclose(p["w"], w0 - 0.1 * (g["w"] + 0.01 * w0), rtol=0, atol=1e-15)


def test_sgd_momentum_two_steps_by_hand():
    p, g = _pg()
    w0 = p["w"].copy()
    opt = SGD(p, lr=0.1, momentum=0.9)
    opt.step(g)
    opt.step(g)
    # v1 = g, v2 = 0.9 g + g = 1.9 g; total displacement 0.1 * (1 + 1.9) g
    np.testing.assert_allclose(p["w"], w0 - 0.1 * 2.9 * g["w"], rtol=1e-14)


def test_nesterov_two_steps_by_hand():
    p, g = _pg()
    w0 = p["w"].copy()
    opt = SGD(p, lr=0.1, momentum=0.9, nesterov=True)
    opt.step(g)  # v1 = g, step g + 0.9 g = 1.9 g
    opt.step(g)  # v2 = 1.9 g, step g + 0.9 * 1.9 g = 2.71 g
    np.testing.assert_allclose(p["w"], w0 - 0.1 * (1.9 + 2.71) * g["w"], rtol=1e-14)


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps).
    p, g = _pg()
    w0 = p["w"].copy()
    Adam(p, lr=0.01, eps=1e-8).step(g)
    np.testing.assert_allclose(p["w"], w0 - 0.01 * g["w"] / (np.abs(g["w"]) + 1e-8), rtol=1e-12)


def test_adam_second_step_by_hand():
    p, g = _pg()
    w0 = p["w"].copy()
    g2 = {k: -0.5 * v for k, v in g.items()}
    opt = Adam(p, lr=0.01, betas=(0.8, 0.9), eps=1e-6)
    opt.step(g)
    w1 = p["w"].copy()
    opt.step(g2)
    m = 0.8 * (0.2 * g["w"]) + 0.2 * g2["w"]
    v = 0.9 * (0.1 * g["w"] ** 2) + 0.1 * g2["w"] ** 2
    expect = w1 - 0.01 * (m / (1 - 0.8 ** 2)) / (np.sqrt(v / (1 - 0.9 ** 2)) + 1e-6)
    np.testing.assert_allclose(p["w"], expect, rtol=1e-12)
    assert not np.allclose(w0, w1)


def test_adamw_decoupled_decay_by_hand():
    p, g = _pg()
    w0 = p["w"].copy()
    AdamW(p, lr=0.01, weight_decay=0.1, eps=1e-8).step(g)
    expect = w0 * (1 - 0.01 * 0.1) - 0.01 * g["w"] / (np.abs(g["w"]) + 1e-8)
    np.testing.assert_allclose(p["w"], expect, rtol=1e-12)


def test_adam_l2_differs_from_adamw():
    p1, g = _pg()
    p2, _ = _pg()
    Adam(p1, lr=0.01, weight_decay=0.1).step(g)
    AdamW(p2, lr=0.01, weight_decay=0.1).step(g)
    assert not np.allclose(p1["w"], p2["w"])


def test_optimizer_on_module_updates_in_place():
    class M(Module):
        def __init__(self):
            super().__init__()
            self.add_param("W", np.ones((2, 2)))

    m = M()
    m.grads["W"][...] = 1.0
    SGD(m, lr=0.5).step(m)
    np.testing.assert_array_equal(m.params["W"], 0.5)


def test_bad_inputs():
    p, g = _pg()
    with pytest.raises(ValueError, match=r"^lr:"):
        SGD(p, lr=-1)
    with pytest.raises(ValueError, match="missing"):
        SGD(p, lr=0.1).step({"w": g["w"]})
    with pytest.raises(ValueError, match="shape"):
        SGD(p, lr=0.1).step({"w": g["w"][:2], "b": g["b"]})
    with pytest.raises(ValueError, match=r"^betas\[0\]:"):
        Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match=r"^nesterov:"):
        SGD(p, lr=0.1, nesterov=True)


def test_state_dict_roundtrip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=3), "b": rng.normal(size=(1, 1))} for _ in range(6)]
    pa, _ = _pg()
    a = Adam(pa, lr=0.01)
    for gr in grads[:3]:
        a.step(gr)
    sd = a.state_dict()
    pb = {k: v.copy() for k, v in pa.items()}
    b = Adam(pb, lr=0.5)
    b.load_state_dict(sd)
    assert b.lr == 0.01 and b.t == 3
    for gr in grads[3:]:
        a.step(gr)
        b.step(gr)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    with pytest.raises(ValueError, match="unexpected key"):
        b.load_state_dict({**sd, "exp_avg.nope": np.zeros(3)})
    with pytest.raises(ValueError, match="SGD"):
        b.load_state_dict(SGD(pb, lr=0.1).state_dict())


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    n = clip_grad_norm(g, 1.0)
    assert n == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3.0 / (5 + 1e-6), 0.0])
    g2 = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(g2, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(g2["a"], [0.3, 0.4])  # below the threshold: untouched
    with pytest.raises(ValueError, match="non-finite values in \\['bad'\\]"):
        clip_grad_norm({"ok": np.ones(2), "bad": np.array([np.nan])}, 1.0)
    with pytest.raises(ValueError, match=r"^max_norm:"):
        clip_grad_norm(g2, 0)


def test_schedules_at_chosen_steps():
    assert constant(0.3)(17) == 0.3
    assert exponential_decay(1.0, 0.5)(3) == 0.125
    f = noam(1.0, d_model=256, warmup=4000)
    peak = 256 ** -0.5 * 4000 ** -0.5
    assert f(3999) == pytest.approx(peak)
    assert f(0) == pytest.approx(256 ** -0.5 * 4000 ** -1.5)
    assert f(15999) == pytest.approx(256 ** -0.5 * 16000 ** -0.5)
    assert f(1999) < f(3999) > f(7999)
    c = cosine_with_warmup(1.0, total_steps=110, warmup=10, min_lr=0.1)
    assert c(0) == pytest.approx(0.1) and c(9) == pytest.approx(1.0)
    assert c(10) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert c(110) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"^step:"):
        c(-1)


def test_newbob_halves_on_plateau_then_ramps():
    s = NewBob(1.0, factor=0.5, threshold=0.01)
    assert s.update(0.50) == 1.0  # first epoch: reference
    assert s.update(0.40) == 1.0  # 20 % better
    assert s.update(0.399) == 0.5  # 0.25 % better < 1 %: halve
    assert s.update(0.30) == 0.25  # ramping: halve every epoch from now on
    s2 = NewBob(1.0)
    s2.load_state_dict(s.state_dict())
    assert s2.update(0.2) == s.update(0.2) == 0.125


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["sgd_momentum", "sgd_nesterov", "adam", "adam_l2", "adamw"])
def test_against_torch_optim(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shapes = {"W": (4, 3), "b": (4,)}
    p0 = {k: rng.normal(size=s) for k, s in shapes.items()}
    grads = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(5)]
    ours = {k: v.copy() for k, v in p0.items()}
    tp = [torch.tensor(p0[k], requires_grad=True) for k in shapes]
    make = {
        "sgd_momentum": (lambda: SGD(ours, 0.1, momentum=0.9, weight_decay=0.01),
                         lambda: torch.optim.SGD(tp, lr=0.1, momentum=0.9, weight_decay=0.01)),
        "sgd_nesterov": (lambda: SGD(ours, 0.1, momentum=0.8, nesterov=True),
                         lambda: torch.optim.SGD(tp, lr=0.1, momentum=0.8, nesterov=True)),
        "adam": (lambda: Adam(ours, 0.01, betas=(0.8, 0.95)),
                 lambda: torch.optim.Adam(tp, lr=0.01, betas=(0.8, 0.95))),
        "adam_l2": (lambda: Adam(ours, 0.01, weight_decay=0.1),
                    lambda: torch.optim.Adam(tp, lr=0.01, weight_decay=0.1)),
        "adamw": (lambda: AdamW(ours, 0.01, weight_decay=0.1),
                  lambda: torch.optim.AdamW(tp, lr=0.01, weight_decay=0.1)),
    }[kind]
    opt, topt = make[0](), make[1]()
    for i, gr in enumerate(grads):
        if i == 3:  # a schedule changing the rate mid-way
            opt.lr *= 0.5
            for group in topt.param_groups:
                group["lr"] *= 0.5
        opt.step(gr)
        for t, k in zip(tp, shapes):
            t.grad = torch.tensor(gr[k])
        topt.step()
    for t, k in zip(tp, shapes):
        np.testing.assert_allclose(ours[k], t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_newbob_patience_waits_for_consecutive_plateaus():
    s = NewBob(1.0, factor=0.5, patience=1, threshold=0.01, ramp=False)
    assert s.update(1.0) == 1.0      # reference
    assert s.update(0.999) == 1.0    # plateau 1 <= patience
    assert s.update(0.5) == 1.0      # improvement resets the count
    assert s.update(0.499) == 1.0    # plateau 1
    assert s.update(0.498) == 0.5    # plateau 2 > patience: halve, count reset
    assert s.update(0.497) == 0.5    # plateau 1 again (no ramp)
    s2 = NewBob(1.0, patience=1, threshold=0.01, ramp=False)
    s2.load_state_dict(s.state_dict())
    assert s2.update(0.496) == s.update(0.496) == 0.25
    with pytest.raises(ValueError, match=r"^patience:"):
        NewBob(1.0, patience=-1)
