"""SGD (momentum, Nesterov), Adam and AdamW working in place on dicts of parameter arrays.

An optimizer is built on the parameters it updates, either a ``Module`` (its dotted
``parameters()``) or a plain ``{name: array}`` dict; ``step(grads)`` takes the gradients under the
same names (a ``Module`` or a dict). Parameters are updated in place, so the module (or whoever holds
the arrays) sees the new values without copying. ``lr`` is a plain attribute: a schedule sets
``opt.lr = schedule(step)`` before each ``step``.

``state_dict()`` is flat: scalars (``"step"``, ``"lr"``, hyper-parameters) and arrays under
``"<slot>.<param name>"`` (e.g. ``"exp_avg.encoder.W"``). ``scratchasr.io`` stores the arrays in
the checkpoint's npz and the scalars in its JSON.
"""

from __future__ import annotations

from typing import Dict, Mapping, Union

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]

ArrayDict = Mapping[str, np.ndarray]


def _as_dict(obj, what: str) -> Dict[str, np.ndarray]:
    # A Module exposes its dotted parameters / gradients; a mapping is used as given.
    if hasattr(obj, "named_parameters") and what == "params":
        return dict(obj.named_parameters())
    if hasattr(obj, "named_grads") and what == "grads":
        return dict(obj.named_grads())
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{what}: expected a Module or a dict of numpy arrays, got {type(obj).__name__}")


def _nonneg(name: str, v) -> float:
    v = float(v)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
    return v


class Optimizer:
    """Base class: holds ``params`` (name -> array, updated in place), ``lr`` and per-parameter slots."""

    slots: tuple = ()  # names of per-parameter state arrays (created lazily at the first step)
    hyper: tuple = ()  # names of scalar hyper-parameters saved in state_dict

    def __init__(self, params: Union[ArrayDict, object], lr: float) -> None:
        self.params = _as_dict(params, "params")
        if not self.params:
            raise ValueError("params: expected at least one parameter array")
        for k, p in self.params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"params[{k!r}]: expected a floating-point numpy array")
        self.lr = _nonneg("lr", lr)
        self.t = 0  # number of steps taken
        self.state: Dict[str, Dict[str, np.ndarray]] = {s: {} for s in self.slots}

    def _grads(self, grads) -> Dict[str, np.ndarray]:
        g = _as_dict(grads, "grads")
        missing = sorted(set(self.params) - set(g))
        extra = sorted(set(g) - set(self.params))
        if missing or extra:
            raise ValueError(f"grads: keys must match the parameters; missing {missing}, unexpected {extra}")
        for k, p in self.params.items():
            if g[k].shape != p.shape:
                raise ValueError(f"grads[{k!r}]: expected shape {p.shape}, got {g[k].shape}")
        return g

    def _slot(self, slot: str, k: str) -> np.ndarray:
        s = self.state[slot]
        if k not in s:
            s[k] = np.zeros_like(self.params[k])
        return s[k]

    def step(self, grads) -> None:
        g = self._grads(grads)
        self.t += 1
        for k, p in self.params.items():
            self._update(k, p, np.asarray(g[k], dtype=p.dtype))

    def _update(self, k: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, object]:
        """Flat dict: scalars ``step``, ``lr`` and hyper-parameters; arrays ``<slot>.<name>`` (copies)."""
        out: Dict[str, object] = {"type": type(self).__name__, "step": self.t, "lr": self.lr}
        for h in self.hyper:
            out[h] = getattr(self, h)
        for slot, arrays in self.state.items():
            for k, v in arrays.items():
                out[f"{slot}.{k}"] = v.copy()
        return out

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore from :meth:`state_dict`; slot arrays must name known parameters with matching shapes."""
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state: saved by {state['type']}, cannot load into {type(self).__name__}")
        new: Dict[str, Dict[str, np.ndarray]] = {s: {} for s in self.slots}
        for key, v in state.items():
            if key in ("type", "step", "lr") or key in self.hyper:
                continue
            slot, _, name = key.partition(".")
            if slot not in new or name not in self.params:
                raise ValueError(f"state: unexpected key {key!r} (slots {list(self.slots)}, "
                                 f"parameters {sorted(self.params)[:5]}...)")
            v = np.asarray(v)
            if v.shape != self.params[name].shape:
                raise ValueError(f"state[{key!r}]: expected shape {self.params[name].shape}, got {v.shape}")
            new[slot][name] = v.astype(self.params[name].dtype, copy=True)
        self.t = int(state["step"])
        self.lr = float(state["lr"])
        for h in self.hyper:
            if h in state:
                setattr(self, h, type(getattr(self, h))(state[h]))
        self.state = new


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD`` (dampening 0)."""

    slots = ("momentum_buffer",)
    hyper = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = _nonneg("momentum", momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")

    def _update(self, k, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p  # L2 decay folded into the gradient  [optim:l2]
        if self.momentum:
            buf = self.state["momentum_buffer"].get(k)
            if buf is None:  # first step: v_1 = g_1 (torch's convention, not mu * 0 + g)
                buf = self.state["momentum_buffer"][k] = g.copy()
            else:
                buf *= self.momentum  # v_t = mu v_{t-1} + g_t  [optim:sgd-momentum]
                buf += g
            # [optim:sgd-nesterov] looks ahead along the new velocity: g + mu v_t
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g  # [optim:sgd]


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient (``torch.optim.Adam``)."""

    slots = ("exp_avg", "exp_avg_sq")
    hyper = ("beta1", "beta2", "eps", "weight_decay")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1), got {b}")
        self.beta1, self.beta2 = float(b1), float(b2)
        self.eps = _nonneg("eps", eps)
        self.weight_decay = _nonneg("weight_decay", weight_decay)

    def _update(self, k, p, g):
        if self.weight_decay:
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay  # decoupled decay on theta  [optim:adamw]
            else:
                g = g + self.weight_decay * p  # L2 in the gradient  [optim:l2]
        m, v = self._slot("exp_avg", k), self._slot("exp_avg_sq", k)
        b1, b2 = self.beta1, self.beta2
        m *= b1  # m_t = b1 m + (1 - b1) g  [optim:adam-m]
        m += (1 - b1) * g
        v *= b2  # v_t = b2 v + (1 - b2) g^2  [optim:adam-v]
        v += (1 - b2) * g * g
        # bias correction: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)  [optim:adam-bias]
        bc1, bc2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        p -= (self.lr / bc1) * m / (np.sqrt(v / bc2) + self.eps)  # [optim:adam]


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 0.01 as ``torch.optim.AdamW``)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
