"""Checkpoints: round trip, RNG continuation, corrupt files, atomic replacement, no pickle."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from scratchasr import io as sio
from scratchasr.io import load_checkpoint, rng_from_state, rng_state, save_checkpoint


def _params(rng):
    return {"encoder.layers.0.W_ih": rng.normal(size=(4, 3)),
            "encoder.layers.0.b": rng.normal(size=(4,)).astype(np.float32),
            "out.W": rng.normal(size=(2, 2, 2)), "count": np.arange(3, dtype=np.int64)}


def _flat_opt_state(rng):
    return {"type": "Adam", "step": 7, "lr": 1e-3, "beta1": 0.9, "eps": 1e-8,
            "exp_avg.out.W": rng.normal(size=(2, 2, 2)), "exp_avg_sq.out.W": rng.random((2, 2, 2))}


def test_round_trip(tmp_path, rng):
    params, opt = _params(rng), _flat_opt_state(rng)
    gen = np.random.default_rng(123)
    gen.normal(size=10)
    meta = {"config": {"hidden": 32, "lr": 1e-3, "name": "ctc"}, "step": 700, "epoch": 3,
            "rng": rng_state(gen), "np_scalar": np.float32(0.5), "history": [{"per": np.float64(0.25)}]}
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, params, optimizer_state=opt, meta=meta)
    p2, o2, m2 = load_checkpoint(path)
    assert sorted(p2) == sorted(params)
    for k in params:
        assert p2[k].dtype == params[k].dtype
        np.testing.assert_array_equal(p2[k], params[k])
    assert sorted(o2) == sorted(opt)
    for k, v in opt.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(o2[k], v)
        else:
            assert o2[k] == v
    assert m2["config"] == meta["config"] and m2["step"] == 700 and m2["epoch"] == 3
    assert m2["np_scalar"] == 0.5 and m2["history"] == [{"per": 0.25}]
    assert m2["rng"] == meta["rng"]
    # the archive really has the documented layout
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert "param/out.W.npy" in names and "optim/exp_avg.out.W.npy" in names and "meta.json.npy" in names


def test_pair_form_and_no_optimizer(tmp_path, rng):
    arrays = {"m.w": rng.normal(size=3)}
    scalars = {"type": "SGD", "t": 2, "betas": [0.9, 0.99]}
    save_checkpoint(tmp_path / "a", {"w": np.ones(3)}, optimizer_state=(arrays, scalars))
    _, o, meta = load_checkpoint(tmp_path / "a")
    assert isinstance(o, tuple) and o[1] == scalars and meta == {}
    np.testing.assert_array_equal(o[0]["m.w"], arrays["m.w"])
    save_checkpoint(tmp_path / "b", {"w": np.ones(3)})
    assert load_checkpoint(tmp_path / "b")[1] is None
    assert (tmp_path / "a").exists() and not (tmp_path / "a.npz").exists()  # path used as given


def test_rng_state_continues_bit_exactly(tmp_path):
    gen = np.random.default_rng(2024)
    gen.standard_normal(17)
    save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(1)}, meta={"rng": rng_state(gen)})
    expected = (gen.standard_normal(5), gen.integers(0, 1 << 62, size=4), gen.random(3))
    resumed = rng_from_state(load_checkpoint(tmp_path / "c.npz")[2]["rng"])
    got = (resumed.standard_normal(5), resumed.integers(0, 1 << 62, size=4), resumed.random(3))
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    # other bit generators too
    g2 = np.random.Generator(np.random.Philox(5))
    s = json.loads(json.dumps(rng_state(g2)))
    np.testing.assert_array_equal(rng_from_state(s).random(4), g2.random(4))
    with pytest.raises(ValueError, match="bit_generator"):
        rng_from_state({"bit_generator": "os"})
    with pytest.raises(TypeError, match=r"^rng:"):
        rng_state(np.random.RandomState(0))


def test_with_real_optimizer_resume(tmp_path, rng):
    # whatever form the optimizer's state_dict has, load_state_dict accepts what comes back
    from scratchasr.optim import Adam
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(4)]
    ref = {k: v.copy() for k, v in params.items()}
    a = Adam(ref, lr=1e-2)
    for g in grads:
        a.step(g)
    b = Adam(params, lr=1e-2)
    for g in grads[:2]:
        b.step(g)
    save_checkpoint(tmp_path / "r.npz", params, optimizer_state=b.state_dict())
    p2, state, _ = load_checkpoint(tmp_path / "r.npz")
    c = Adam(p2, lr=5.0)
    c.load_state_dict(*state) if isinstance(state, tuple) else c.load_state_dict(state)
    for g in grads[2:]:
        c.step(g)
    for k in ref:
        np.testing.assert_array_equal(p2[k], ref[k])


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -20])
def test_truncated_file_raises_value_error_naming_file(tmp_path, rng, keep):
    path = tmp_path / "good.npz"
    save_checkpoint(path, _params(rng), optimizer_state=_flat_opt_state(rng), meta={"epoch": 1})
    raw = path.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(raw[:n])
    with pytest.raises(ValueError, match="bad.npz"):
        load_checkpoint(bad)


def test_corrupt_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 300)
    with pytest.raises(ValueError, match="garbage.npz"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.ones(2))
    with pytest.raises(ValueError, match="foreign.npz.*meta.json"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


def test_never_pickles(tmp_path):
    # saving an object array is refused; a pickled member in a file is refused on load
    with pytest.raises(TypeError, match="pickle"):
        save_checkpoint(tmp_path / "x.npz", {"w": np.array([{"a": 1}], dtype=object)})
    evil = tmp_path / "evil.npz"
    meta = np.frombuffer(json.dumps({"format": sio.FORMAT, "version": 1, "meta": {}, "optimizer": None,
                                     "optimizer_form": None}).encode(), dtype=np.uint8)
    np.savez(evil, **{"meta.json": meta, "param/w": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="evil.npz"):
        load_checkpoint(evil)


def test_crash_mid_write_keeps_old_checkpoint(tmp_path, rng, monkeypatch):
    path = tmp_path / "ckpt.npz"
    old = _params(rng)
    save_checkpoint(path, old, meta={"epoch": 1})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        args[0].write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the crash
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_checkpoint(path, {k: v + 1 for k, v in old.items() if v.dtype.kind == "f"}, meta={"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]       # no temp file left behind
    p, _, m = load_checkpoint(path)
    assert m == {"epoch": 1}
    np.testing.assert_array_equal(p["out.W"], old["out.W"])


def test_atomic_replace_uses_fsync_and_replace(tmp_path, rng, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    save_checkpoint(tmp_path / "k.npz", {"w": np.ones(2)})
    assert calls == ["fsync", "replace", "fsync"]   # file, rename, directory


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="params"):
        save_checkpoint(tmp_path / "a.npz", {"w": [1.0]})
    with pytest.raises(TypeError, match="meta"):
        save_checkpoint(tmp_path / "a.npz", {"w": np.ones(1)}, meta={"f": object()})
    with pytest.raises(TypeError, match=r"^optimizer_state:"):
        save_checkpoint(tmp_path / "a.npz", {"w": np.ones(1)}, optimizer_state=[1, 2])
    assert not os.listdir(tmp_path)
