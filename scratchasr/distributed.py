"""Synchronous data-parallel training over MPI: ``mpiexec -n N scratchasr train CONFIG ...``.

Every rank holds the whole model and the whole (cached) training set, builds the SAME global batch order
(``bucket_batches`` with ``default_rng([seed, epoch])``) and trains on its own disjoint shard of each global
batch (``idx[rank::N]``). Each utterance's loss keeps the weight ``1 / (global batch size * grad_accum)``
it has in one process, so the SUM of the ranks' gradients is the one-process gradient:

    g = sum_r sum_{b in shard_r} w_b dL_b/dtheta = sum_{b in batch} w_b dL_b/dtheta        [dist:allreduce]

The sum is ONE ``MPI_Allreduce`` per optimiser step over one flattened buffer (every gradient, plus one
slot for "a rank was interrupted" so that all ranks stop at the same step); clipping and the optimiser
then run on every rank on identical gradients and keep the replicas identical. Rank 0 alone writes
checkpoints, logs and plots; the other ranks print nothing on stdout and show no progress bars.

Features: each rank computes the features of its shard of every split (``utts[rank::N]``) into its own
keyed feature-cache file (``feats/<split>.part<r>of<N>-<key>.npz``), all ranks meet at a barrier, then each
rank loads every part from the shared cache and interleaves them back into corpus order (so CMVN and
everything after it is the same on every rank and as in one process). A rerun with the same N reuses the
parts; another N (or one process) computes its own cache files.

Dev scoring: each rank decodes ``dev[rank::N]``, the hypotheses are gathered on every rank and scored there,
so every rank takes the same NewBob / early-stopping decisions.

What differs from one process: batch padding per shard (the models are padding-invariant: the contract
test checks it); the rounding of the gradient sum (float32 ~1e-7 relative per step); dropout masks: ranks
> 0 draw theirs from ``default_rng([seed, epoch, batch, rank, i])`` per batch (so ``--resume`` redraws them),
rank 0 keeps the model's own generators (saved in the checkpoint), so training with dropout is equivalent
in distribution, not bit for bit. SpecAugment masks are drawn for the whole global batch on every rank in
the one-process order, then sharded: identical to one process.

Without ``mpi4py``, or outside ``mpiexec`` (no MPI environment variables), :func:`world` is a one-process
stand-in whose methods are no-ops: the trainer runs exactly as it does without this module. See
docs/distributed.md (hostfiles, cost of the allreduce).
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["World", "world", "launched_ranks", "flatten_into", "unflatten_from"]

# Environment variables the common launchers set in every rank (MPICH/Hydra, Open MPI, PMIx, Slurm's PMI).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


def launched_ranks() -> int:
    """How many ranks a launcher (mpiexec/mpirun) started this process among; 1 outside a launcher."""
    for v in _SIZE_VARS:
        s = os.environ.get(v, "")
        if s.isdigit() and int(s) >= 1:
            return int(s)
    return 1


def flatten_into(buf: np.ndarray, arrays: Sequence[np.ndarray]) -> int:
    """Copy ``arrays`` one after the other into the flat ``buf``; returns the number of elements written."""
    o = 0
    for a in arrays:
        n = a.size
        buf[o:o + n] = a.reshape(-1)
        o += n
    return o


def unflatten_from(buf: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    """Inverse of :func:`flatten_into`: copy consecutive slices of ``buf`` back into ``arrays`` in place."""
    o = 0
    for a in arrays:
        n = a.size
        a[...] = buf[o:o + n].reshape(a.shape)
        o += n


class World:
    """The ranks of one training run. ``World(None)`` is the one-process stand-in (rank 0 of 1)."""

    def __init__(self, comm=None) -> None:
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self._buf: Optional[np.ndarray] = None
        self.allreduce_calls = 0          # counted for the tests: one per optimiser step

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------------ collectives (no-ops in one process)
    def barrier(self) -> None:
        if self.size > 1:
            self.comm.Barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (a decision all ranks must take together)."""
        if self.size == 1:
            return bool(flag)
        return bool(self.comm.allreduce(bool(flag), op=_mpi().LOR))

    def root_decides(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (e.g. the time budget: clocks differ between ranks)."""
        return bool(flag) if self.size == 1 else bool(self.comm.bcast(bool(flag), root=0))

    def sum(self, values: Sequence[float]) -> tuple:
        """Element-wise sum over ranks of a few numbers (epoch statistics), in float64."""
        if self.size == 1:
            return tuple(values)
        a = np.asarray(values, np.float64)
        self.comm.Allreduce(_mpi().IN_PLACE, a, op=_mpi().SUM)
        return tuple(type(v)(x) if isinstance(v, (int, float)) else x for v, x in zip(values, a))

    def allgather(self, obj) -> list:
        return [obj] if self.size == 1 else self.comm.allgather(obj)

    def allreduce_grads(self, grads: Dict[str, np.ndarray], interrupted: bool = False) -> bool:
        """Sum ``grads`` (in place) over the ranks with ONE allreduce of one flat buffer  [dist:allreduce].

        The buffer's last element carries ``interrupted``; returns whether any rank was interrupted, so that
        every rank stops after the same step. In one process: returns ``interrupted``, touches nothing."""
        if self.size == 1:
            return bool(interrupted)
        arrays = list(grads.values())
        n = sum(a.size for a in arrays)
        dtype = np.result_type(*arrays)
        if self._buf is None or self._buf.shape[0] != n + 1 or self._buf.dtype != dtype:
            self._buf = np.empty(n + 1, dtype)
        buf = self._buf
        flatten_into(buf, arrays)
        buf[n] = 1.0 if interrupted else 0.0
        self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
        self.allreduce_calls += 1
        unflatten_from(buf, arrays)
        return bool(buf[n] > 0)

    def abort(self, code: int) -> None:
        """End every rank (an error on one rank must not leave the others waiting in a collective)."""
        if self.size > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            self.comm.Abort(code)

    # ------------------------------------------------------------------ data
    def shard(self, idx) -> np.ndarray:
        """This rank's utterances of the global batch ``idx`` (empty only when len(idx) <= rank)."""
        return np.asarray(idx)[self.rank::self.size]

    def batch(self, split, idx, augment=None, *, generators=None, key=()):
        """The Batch of this rank's shard of the global batch ``idx`` (``split.batch`` in one process), or
        None when the shard is empty (a batch with fewer utterances than ranks: the rank only joins the
        allreduce).

        SpecAugment (``augment(feats, j)`` drawing from one generator in utterance order) is applied to the
        whole global batch so each utterance gets the mask it gets in one process. On ranks > 0 the model's
        ``generators`` (dropout) are reseeded from ``default_rng([*key, rank, i])`` (i: the generator's
        place in name order). Only ``split.batch`` and ``split.feats`` (for SpecAugment) are used."""
        if self.size == 1:
            return split.batch(idx, augment=augment)
        idx = np.asarray(idx)
        mine = list(range(self.rank, len(idx), self.size))
        if not mine:
            return None
        if self.rank and generators:
            for n, (_, g) in enumerate(sorted(generators.items())):
                seeded = np.random.default_rng([*map(int, key), self.rank, n])
                g.bit_generator.state = seeded.bit_generator.state
        if augment is not None:          # every utterance of the global batch, in the one-process order
            masked = [augment(split.feats[i], j) for j, i in enumerate(idx)]
            augment = (lambda f, j: masked[mine[j]])            # noqa: E731
        return split.batch(idx[mine], augment=augment)

    def cached_features(self, utts: Sequence, frontend, cache_dir, name: str, *, speed: float = 1.0,
                        progress: bool = True, skipped: Optional[Dict[str, str]] = None) -> List:
        """``featcache.cached_features``, its work shared: rank r computes ``utts[r::N]`` into its own cache
        part, then every rank loads all N parts and interleaves them back into corpus order."""
        from .data.featcache import cached_features
        if self.size == 1:
            return cached_features(utts, frontend, cache_dir, name, speed=speed, progress=progress,
                                   skipped=skipped)

        def part(r, prog, skip):
            if not utts[r::self.size]:             # fewer utterances than ranks
                return []
            return cached_features(utts[r::self.size], frontend, cache_dir, f"{name}.part{r}of{self.size}",
                                   speed=speed, progress=prog, skipped=skip)

        err = None
        try:
            part(self.rank, progress, {})          # compute (or find) this rank's part
        except Exception as e:                     # every rank must reach the barrier; report after it
            err = e
        failed = self.allgather(None if err is None else f"{type(err).__name__}: {err}")
        if err is not None:
            raise err
        if any(failed):
            raise ValueError(f"data_dir: features of split {name!r} failed on another rank: "
                             f"{next(f for f in failed if f)}")
        out: List = [None] * len(utts)
        for r in range(self.size):
            out[r::self.size] = part(r, False, skipped)      # each part now read from the cache
        return out

    def evaluate_dev(self, evaluate, model, dev, vocab, scoring, cfg):
        """``evaluate(model, dev, vocab, scoring, cfg)`` (the trainer's dev scoring) with the decoding shared:
        rank r decodes ``dev[r::N]``, the hypotheses are gathered and scored on every rank."""
        if self.size == 1 or model.IS_LM:
            return evaluate(model, dev, vocab, scoring, cfg)
        from .trainer import decode_features, score_hypotheses
        model.eval()
        try:
            mine = decode_features(model, dev.feats[self.rank::self.size], beam=cfg.beam,
                                   batch_size=cfg.batch_size, progress=False, desc="dev")
        finally:
            model.train()
        hyps: List = [None] * len(dev.feats)
        for r, part in enumerate(self.allgather(mine)):
            hyps[r::self.size] = part
        er, _ = score_hypotheses(vocab, scoring, [u.tokens for u in dev.utts], hyps, units=cfg.units)
        return er.rate, er


def _mpi():
    from mpi4py import MPI
    return MPI


_WORLD: Optional[World] = None


def world() -> World:
    """The process's World: MPI's COMM_WORLD when started by a launcher with more than one rank, else the
    one-process stand-in. Started by ``mpiexec -n N`` (N > 1) without mpi4py installed is an error: N
    independent runs would write the same experiment directory."""
    global _WORLD
    if _WORLD is None:
        n = launched_ranks()
        if n == 1:
            _WORLD = World(None)
        else:
            try:
                comm = _mpi().COMM_WORLD
            except ImportError:
                raise ValueError(f"mpiexec: started as one of {n} ranks but mpi4py is not installed; "
                                 f"pip install 'scratchasr[mpi]' (see docs/distributed.md)") from None
            _WORLD = World(comm if comm.Get_size() > 1 else None)
    return _WORLD
