"""MPI data parallelism (scratchasr.distributed): 2 ranks train like 1 process at the same global batch.

The 2-rank tests start ``mpiexec -n 2 scratchasr train`` on a tiny Kaldi data dir of random-noise audio
(words as units) and compare the checkpoints with a one-process run: parameters within 1e-5 relative in
float32 (the trainer's dtype), the logged losses too; ``--resume`` under MPI continues bit-exactly; a batch
smaller than the number of ranks (one rank's shard empty), gradient accumulation and SpecAugment are all
exercised. They are skipped, with the reason, when mpi4py or mpiexec is missing (``pip install
'scratchasr[mpi]'``). The rest checks the one-process stand-in, which must leave the trainer untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchasr import distributed
from scratchasr.distributed import World, flatten_into, launched_ranks, unflatten_from
from scratchasr.io import load_checkpoint

BIN = Path(sys.executable).parent


def _mpiexec():
    for p in (BIN / "mpiexec", shutil.which("mpiexec")):
        if p and Path(p).exists():
            return str(p)
    return None


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(not (_have_mpi4py() and _mpiexec()),
                               reason="mpi4py and mpiexec needed (pip install 'scratchasr[mpi]')")


# ----------------------------------------------------------------------------------------- no MPI needed


def test_flatten_round_trip_keeps_shapes_and_values():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,), (2, 1, 3))]
    buf = np.zeros(sum(a.size for a in arrays) + 1, np.float32)
    assert flatten_into(buf, arrays) == 23
    want = [a.copy() for a in arrays]
    for a in arrays:
        a[...] = 0
    unflatten_from(buf, arrays)
    for a, w in zip(arrays, want):
        np.testing.assert_array_equal(a, w)


def test_launched_ranks_reads_the_launchers_environment(monkeypatch):
    for v in distributed._SIZE_VARS:
        monkeypatch.delenv(v, raising=False)
    assert launched_ranks() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_ranks() == 4
    monkeypatch.setenv("PMI_SIZE", "3")                  # MPICH's Hydra
    assert launched_ranks() == 3


def test_one_process_world_is_a_no_op():
    w = World(None)
    assert (w.rank, w.size, w.is_root) == (0, 1, True)
    g = {"a": np.ones((2, 3), np.float32), "b": np.arange(4.0, dtype=np.float32)}
    before = {k: v.copy() for k, v in g.items()}
    assert w.allreduce_grads(g, True) is True and w.allreduce_grads(g, False) is False
    assert w.allreduce_calls == 0
    for k in g:
        np.testing.assert_array_equal(g[k], before[k])
    assert w.sum((1.5, 2)) == (1.5, 2) and w.any(True) and not w.root_decides(False)
    np.testing.assert_array_equal(w.shard([4, 5, 6]), [4, 5, 6])


def test_one_process_batch_is_the_trainers_batch():
    from scratchasr.data.corpus import CorpusUtterance
    from scratchasr.trainer import Split
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((t, 3)).astype(np.float32) for t in (5, 7, 4)]
    utts = [CorpusUtterance(f"u{i}", "s", "x.wav", ["a"], "a") for i in range(3)]
    split = Split(utts, feats, [np.array([1, 2]), np.array([1]), np.array([2])])
    a, b = World(None).batch(split, [2, 0]), split.batch([2, 0])
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.feats, b.feats)


def test_shards_are_disjoint_and_cover_the_batch():
    idx = np.arange(7)
    parts = []
    for r in range(3):
        w = World(None)
        w.rank, w.size = r, 3
        parts.append(w.shard(idx))
    assert sorted(np.concatenate(parts).tolist()) == idx.tolist()
    w = World(None)
    w.rank, w.size = 2, 3
    assert len(w.shard([10, 11])) == 0               # a last batch smaller than the number of ranks


def test_mpiexec_without_mpi4py_is_refused(monkeypatch):
    monkeypatch.setattr(distributed, "_WORLD", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)     # import fails
    with pytest.raises(ValueError, match=r"^mpiexec: started as one of 2 ranks but mpi4py is not"):
        distributed.world()


# ----------------------------------------------------------------------------------------- 2 ranks


def _noise_corpus(root: Path) -> Path:
    """A Kaldi data dir of random-noise audio with word transcripts: 10 train, 3 dev utterances."""
    import soundfile as sf
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "cat"]
    for split, n in (("train", 10), ("dev", 3)):
        d = root / split
        d.mkdir(parents=True)
        scp, text = [], []
        for i in range(n):
            uid = f"{split}{i:02d}"
            wav = root / f"{uid}.wav"
            sf.write(wav, (0.1 * rng.standard_normal(int(16000 * rng.uniform(0.25, 0.5)))).astype(np.float32),
                     16000)
            scp.append(f"{uid} {wav}\n")
            text.append(f"{uid} {' '.join(rng.choice(words, size=rng.integers(1, 4)))}\n")
        (d / "wav.scp").write_text("".join(scp))
        (d / "text").write_text("".join(text))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpi")
    data = _noise_corpus(root / "data")
    cfg = root / "config.py"
    # batch 3 over 10 utterances: batches of 3, 3, 3, 1 (one rank's shard of the last one is empty);
    # grad_accum 2: two optimiser steps per epoch; SpecAugment masks drawn in the one-process order
    cfg.write_text(f"CONFIG = dict(model='ctc_blstm', data_dir={str(data)!r}, units='words', hidden=8, "
                   f"num_layers=1, stack=1, dropout=0.0, batch_size=3, grad_accum=2, lr=1e-2, "
                   f"spec_augment=True, patience=100, progress=False, schedule='constant')\n")
    return cfg


def _train(cfg, exp, *extra, ranks=1):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    for v in distributed._SIZE_VARS:
        env.pop(v, None)
    cmd = [str(BIN / "scratchasr"), "train", str(cfg), f"--exp_dir={exp}", *extra]
    if ranks > 1:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _params(exp):
    arrays, _, meta = load_checkpoint(Path(exp) / "checkpoint.npz")
    return {k: v for k, v in arrays.items() if not k.startswith("frontend.")}, meta


def _close(a, b, what):
    assert a.keys() == b.keys() and all(v.dtype == np.float32 for v in a.values())
    for k in a:
        rel = np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(a[k]), 1e-30)
        assert rel < 1e-5, (what, k, rel)


@needs_mpi
def test_two_ranks_with_a_resume_train_like_one_process(corpus, tmp_path):
    """1 process for 2 epochs (in this process) == 2 ranks for 1 epoch, then ``--resume`` to 2 epochs."""
    from scratchasr.trainer import TrainConfig, load_config_file, train
    train(TrainConfig.from_overrides(load_config_file(str(corpus)), [f"--exp_dir={tmp_path / 'one'}",
                                                                        "--epochs=2"]))
    _train(corpus, tmp_path / "two", "--epochs=1", ranks=2)
    first, _ = _params(tmp_path / "two")
    r = _train(corpus, tmp_path / "two", "--epochs=2", "--resume", ranks=2)
    assert r.stdout.count("epoch 2:") == 1                     # rank 0 alone prints
    a, meta_a = _params(tmp_path / "one")
    b, meta_b = _params(tmp_path / "two")
    _close(a, b, "2 ranks")
    assert any(not np.array_equal(first[k], b[k]) for k in b)    # the resumed epoch moved the parameters
    for ha, hb in zip(meta_a["history"], meta_b["history"], strict=True):
        assert ha["step"] == hb["step"] == 2 * ha["epoch"]           # batches 3+3 | 3+1: 2 steps an epoch
        np.testing.assert_allclose(hb["train_loss"], ha["train_loss"], rtol=1e-5)
        assert ha["frames_per_s"] > 0 and ha["dev_err"] == pytest.approx(hb["dev_err"])
    assert [h["epoch"] for h in json.loads((tmp_path / "two" / "log.json").read_text())] == [1, 2]
    parts = sorted(p.name.split("-")[0] for p in (tmp_path / "two" / "feats").glob("*.npz"))
    assert parts == ["dev.part0of2", "dev.part1of2", "train.part0of2", "train.part1of2"]


@needs_mpi
@pytest.mark.slow
def test_two_rank_resume_is_bit_exact(corpus, tmp_path):
    _train(corpus, tmp_path / "full", "--epochs=2", ranks=2)
    _train(corpus, tmp_path / "res", "--epochs=1", ranks=2)
    _train(corpus, tmp_path / "res", "--epochs=2", "--resume", ranks=2)
    b, meta_b = _params(tmp_path / "full")
    c, meta_c = _params(tmp_path / "res")
    for k in b:
        np.testing.assert_array_equal(c[k], b[k], err_msg=k)
    assert [h["train_loss"] for h in meta_c["history"]] == [h["train_loss"] for h in meta_b["history"]]


_SUM_SCRIPT = r"""
import numpy as np
from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.distributed import world
w = world()
assert w.size == 2, w
rng = np.random.default_rng(0)
feats = [rng.standard_normal((t, 3)) for t in (9, 13, 7, 11, 12)]
labels = [[1, 2], [3, 1, 2], [2], [4, 4], [1, 3, 5]]
m = models.build("ctc_blstm", input_dim=3, vocab_size=6, dtype=np.float64, seed=0, hidden=4, num_layers=2,
                 stack=1, dropout=0.0)
idx = np.arange(5)


def grads_of(rows):
    m.zero_grad()
    loss, _ = m.forward_loss(make_batch([feats[i] for i in rows], [labels[i] for i in rows]))
    m.backward(np.full(len(rows), 1.0 / len(idx)))
    return m.gradients()


g = grads_of(w.shard(idx))                                  # this rank's shard, global weights
stop = w.allreduce_grads(g, interrupted=w.rank == 1)
assert stop and w.allreduce_calls == 1
mine = {k: v.copy() for k, v in g.items()}
full = {k: v.copy() for k, v in grads_of(idx).items()}      # one process, the whole batch
worst = max(np.linalg.norm(mine[k] - full[k]) / np.linalg.norm(full[k]) for k in full)
assert worst < 1e-12, worst
print(f"rank {w.rank} ok {worst:.1e}", flush=True)
"""


@needs_mpi
def test_two_rank_gradient_sum_is_the_full_batch_gradient_in_float64(tmp_path):
    """[dist:allreduce] directly: shard gradients summed by one allreduce == the whole batch's, 1e-12."""
    script = tmp_path / "sum.py"
    script.write_text(_SUM_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    # the two ranks' lines may arrive interleaved on one line through mpiexec: find them anywhere
    assert sorted(re.findall(r"rank (\d) ok", r.stdout)) == ["0", "1"], r.stdout
