"""The model contract (../API.md, "scratchasr.data.Batch and scratchasr.models") and the model registry.

Every recognizer and language model is one :class:`Model` subclass in one file of ``models/``,
registered by name with :func:`register`, built with :func:`build`:

    model = models.build("ctc_blstm", input_dim=123, vocab_size=62, dtype=np.float32, seed=0, hidden=256)
    loss, stats = model.forward_loss(batch)      # (B,) per-utterance loss, dict of floats
    model.backward(dloss)                        # adds dloss-weighted gradients into model.grads
    hyps = model.decode(batch, method="beam", beam_size=8, lm=lm, lm_weight=0.3)   # list of id lists

A model owns its loss (``forward_loss`` = forward pass + loss; the trainer knows no loss) and its
decoders. Label ids are ``1 .. vocab_size - 1``; id 0 is the model's blank (CTC, transducer) or
sentence boundary (``<sos>``/``<eos>``: attention decoders and language models).

The step interface. Models and language models that produce output one label at a time also expose

    state = m.init_state(batch_size)                  # the state before any label
    log_probs, state = m.step(state, tokens)          # tokens (B,) int64, the previous labels
                                                      # (0 = <sos> at the start); log_probs (B, V)

where a state is a (nested) tuple/NamedTuple of arrays whose leading axis is the batch. A decoder
keeps one row per hypothesis and reorders rows with :func:`gather_state`, so one beam search serves
every model, and any language model fuses with any decoder (shallow fusion adds
``lm_weight * lm.step(...)[0]`` to the model's log-probabilities). Acoustic models whose step also
needs encoder frames document what ``step`` takes in their file.

Options. ``build`` passes ``**options`` to the class; each model lists its options with defaults in
``OPTIONS`` (every model accepts ``hidden``, ``num_layers`` and ``dropout``; attention models
``heads``). Unknown options are an error naming the option. ``model.config`` holds everything
needed to rebuild the model (name, input_dim, vocab_size, dtype, seed, the resolved options): the
trainer stores it in checkpoints and :func:`scratchasr.inference.load` rebuilds from it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import numpy as np

from .._state import gather_state, scatter_state  # noqa: F401  (re-exported: models.gather_state)
from .._validate import float_array, int_array, length_mask, positive_int
from ..data.batch import Batch
from ..nn.module import Module

__all__ = ["Model", "register", "available", "build", "build_from_config", "gather_state", "check_batch"]

_REGISTRY: Dict[str, Type["Model"]] = {}


def register(name: str) -> Callable[[Type["Model"]], Type["Model"]]:
    """Class decorator: make ``models.build(name, ...)`` build this class."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(cls: Type["Model"]) -> Type["Model"]:
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"{name}: only Model subclasses can be registered, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"name: a different model is already registered as {name!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> List[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def build(name: str, *, input_dim: Optional[int], vocab_size: int, dtype=np.float32, seed: int = 0,
          **options) -> "Model":
    """Build a registered model. ``options`` are the model's own (``hidden``, ``num_layers``, ...)."""
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown model {name!r}; registered: {available()}")
    cls = _REGISTRY[name]
    unknown = sorted(set(options) - set(cls.OPTIONS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not an option of model {name!r}; "
                         f"its options are {sorted(cls.OPTIONS)}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    vocab_size = positive_int("vocab_size", vocab_size, minimum=2)
    if input_dim is not None or not cls.IS_LM:
        input_dim = positive_int("input_dim", input_dim)
    seed = positive_int("seed", seed, minimum=0)
    resolved = dict(cls.OPTIONS)
    resolved.update(options)
    model = cls(input_dim=input_dim, vocab_size=vocab_size, dtype=dt, seed=seed, **resolved)
    model.config = dict(name=name, input_dim=input_dim, vocab_size=vocab_size, dtype=dt.name, seed=seed,
                        options=resolved)
    return model


def build_from_config(config: Dict[str, Any]) -> "Model":
    """Rebuild a model from ``model.config`` (as stored in checkpoints)."""
    for key in ("name", "input_dim", "vocab_size", "dtype", "seed", "options"):
        if key not in config:
            raise ValueError(f"config: missing key {key!r} (a model config holds name, input_dim, "
                             "vocab_size, dtype, seed, options)")
    options = dict(config["options"])
    cls = _REGISTRY.get(config["name"])
    for k in getattr(cls, "INIT_ONLY", ()):
        if k in options:
            options[k] = cls.OPTIONS[k]      # the trained weights are loaded next: do not re-read that file
    return build(config["name"], input_dim=config["input_dim"], vocab_size=config["vocab_size"],
                 dtype=np.dtype(config["dtype"]), seed=config["seed"], **options)


def check_batch(batch: Batch, *, input_dim: Optional[int], vocab_size: int, dtype=None,
                need_feats: bool = True) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], np.ndarray,
                                                  np.ndarray]:
    """Validate a :class:`Batch` and return ``(x, x_lengths, targets, target_lengths)``.

    ``x`` has its padding replaced by zeros (padding may hold anything, NaN included, and must not
    change any result). Target ids within the lengths must lie in ``1 .. vocab_size - 1``.
    """
    if not isinstance(batch, tuple) or not hasattr(batch, "targets"):
        raise TypeError(f"batch: expected a scratchasr.data.Batch, got {type(batch).__name__}")
    x = xl = None
    targets = int_array("batch.targets", batch.targets, ndim=2)
    B = targets.shape[0]
    tl = int_array("batch.target_lengths", batch.target_lengths, ndim=1, shape=(B,))
    if tl.size and (tl.min() < 0 or tl.max() > targets.shape[1]):
        raise ValueError(f"batch.target_lengths: expected values in [0, {targets.shape[1]}], got "
                         f"min {tl.min()} max {tl.max()}")
    valid_t = length_mask(tl, targets.shape[1])
    if np.any(valid_t & ((targets < 1) | (targets >= vocab_size))):
        b, s = np.argwhere(valid_t & ((targets < 1) | (targets >= vocab_size)))[0]
        who = f" (utterance {batch.ids[b]})" if batch.ids is not None else ""
        raise ValueError(f"batch.targets: ids must lie in [1, {vocab_size - 1}] within target_lengths "
                         f"(0 is reserved), got {targets[b, s]} at [{b}, {s}]{who}")
    if need_feats:
        if batch.feats is None:
            raise ValueError("batch.feats: this model needs acoustic features, got None")
        x = float_array("batch.feats", batch.feats, ndim=3)
        if x.shape[0] != B:
            raise ValueError(f"batch.feats: expected {B} utterances (as targets), got shape {x.shape}")
        if input_dim is not None and x.shape[2] != input_dim:
            raise ValueError(f"batch.feats: expected feature dimension {input_dim}, got shape {x.shape}")
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"batch.feats: expected dtype {np.dtype(dtype)} (the model's), got {x.dtype}")
        from .._validate import lengths_array
        xl = lengths_array("batch.feat_lengths", batch.feat_lengths, B, x.shape[1])
        valid = length_mask(xl, x.shape[1])[:, :, None]
        x = np.where(valid, x, x.dtype.type(0))                  # padding never read: NaN there is harmless
        if not np.all(np.isfinite(x)):
            b = int(np.argwhere(~np.isfinite(x))[0][0])
            who = f" (utterance {batch.ids[b]})" if batch.ids is not None else ""
            raise ValueError(f"batch.feats: non-finite values within the lengths of row {b}{who}")
    return x, xl, targets, tl


class Model(Module):
    """Base class of every registered model; see the module docstring for the contract."""

    name: str = ""
    OPTIONS: Dict[str, Any] = {}   # option -> default; the class documents each
    INIT_ONLY: Tuple[str, ...] = ()  # options used only to initialise (e.g. a pre-trained checkpoint's path):
                                     # reset to their defaults when a trained model is rebuilt from its config
    IS_LM: bool = False            # language models take Batch(feats=None, ...)
    config: Dict[str, Any]

    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:  # pragma: no cover
        raise NotImplementedError

    def backward(self, dloss: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0) -> List[List[int]]:  # pragma: no cover
        raise NotImplementedError

    # -------------------------------------------------------------- helpers every model shares
    def _check_decode_args(self, method: str, beam_size, methods=("greedy", "beam")) -> int:
        if method not in methods:
            raise ValueError(f"method: expected one of {list(methods)}, got {method!r}")
        return positive_int("beam_size", beam_size)

    def _check_dloss(self, dloss, B: int) -> np.ndarray:
        d = float_array("dloss", np.asarray(dloss) if isinstance(dloss, (list, tuple)) else dloss, ndim=1,
                        shape=(B,), finite=True)
        return d

    def random_generators(self) -> Dict[str, np.random.Generator]:
        """Every ``np.random.Generator`` held by the model's modules (dropout), by dotted name.

        The trainer saves their states in checkpoints so a resumed run draws the same masks.
        """
        out = {}
        for prefix, m in self.named_modules():
            for k, v in vars(m).items():
                if isinstance(v, np.random.Generator):
                    out[prefix + k] = v
        return out
