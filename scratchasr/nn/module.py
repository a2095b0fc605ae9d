"""The module layer's base class: parameters and gradients in dicts, caches on a stack, no autograd.

How to write a module
---------------------
1. In ``__init__``: call ``super().__init__()``, then register arrays with
   ``self.add_param("W", array)`` (a matching zero gradient is created) and child modules by
   plain attribute assignment (``self.proj = Linear(...)``) or in a :class:`ModuleList`.
2. ``forward(x, ...)``: call ops; in training mode push each op's cache with ``self.push(cache)``
   (nothing is pushed in eval mode, so inference keeps no memory).
3. ``backward(dout)``: pop the caches in reverse order with ``self.pop()``, call the op backwards,
   add (``+=``) parameter gradients into ``self.grads`` and return the input gradient. A cache holding
   more than one thing is a NamedTuple read by field name, never unpacked by position.
4. Parameter arrays are updated in place (``self.params[k][...] = v``), never rebound: optimizers
   built from ``parameters()`` hold the arrays themselves, so a rebound array would be a stale copy.

Every forward in training mode must be matched by exactly one backward: ``zero_grad()`` raises if a
cache was left behind, which catches the classic "forward twice, backward once" bug. Names are dotted
through children (``encoder.layers.2.W``), the same names ``state_dict()``, optimizers and
checkpoints use.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

import numpy as np

__all__ = ["Module", "ModuleList"]


class Module:
    """Base class: ``params``/``grads`` (same keys), ``buffers`` (non-trained state), a cache stack."""

    def __init__(self) -> None:
        self.params: Dict[str, np.ndarray] = {}
        self.grads: Dict[str, np.ndarray] = {}
        self.buffers: Dict[str, np.ndarray] = {}
        self.training = True
        self._caches: List[object] = []

    # ------------------------------------------------------------------ registration
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        if "." in name:
            raise ValueError(f"name: parameter names may not contain '.', got {name!r}")
        if not isinstance(value, np.ndarray) or value.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: expected a float32/float64 ndarray")
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def assign_params(self, arrays: Dict[str, np.ndarray], *, source: str = "state_dict") -> None:
        """Copy ``arrays`` into this module's own parameters of the same names, in place.

        Values are cast to each parameter's dtype (converters from float32 checkpoints or torch use
        this); every name and shape is checked before anything is written, and no array is rebound,
        so an optimizer built earlier from ``parameters()`` keeps updating the module's arrays.
        """
        for k, v in arrays.items():
            if k not in self.params:
                raise ValueError(f"{source}: unexpected parameter {k!r}, expected one of "
                                 f"{sorted(self.params)}")
            if np.shape(v) != self.params[k].shape:
                raise ValueError(f"{source}: {k} has shape {np.shape(v)}, expected {self.params[k].shape}")
        for k, v in arrays.items():
            self.params[k][...] = v  # in place: optimizers hold these very arrays

    def add_buffer(self, name: str, value: np.ndarray) -> np.ndarray:
        self.buffers[name] = value
        return value

    def children(self) -> Iterator[Tuple[str, "Module"]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    # ------------------------------------------------------------------ caches
    def push(self, cache) -> None:
        if self.training:
            self._caches.append(cache)

    def pop(self):
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward: no cache left; was forward called in "
                               f"training mode before this backward?")
        return self._caches.pop()

    def clear_caches(self) -> None:
        """Drop every cache left by forwards in this module and its children (for evaluation loops,
        gradient checks and error recovery, where a training-mode forward is not followed by backward)."""
        for _, m in self.named_modules():
            m._caches.clear()

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # ------------------------------------------------------------------ walking
    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self.children():
            yield from child.named_modules(f"{prefix}{name}.")

    def named_parameters(self) -> Iterator[Tuple[str, np.ndarray]]:
        for prefix, m in self.named_modules():
            for k, v in m.params.items():
                yield prefix + k, v

    def named_grads(self) -> Iterator[Tuple[str, np.ndarray]]:
        for prefix, m in self.named_modules():
            for k, v in m.grads.items():
                yield prefix + k, v

    def parameters(self) -> Dict[str, np.ndarray]:
        """All parameters by dotted name (the arrays themselves: optimizers update them in place)."""
        return dict(self.named_parameters())

    def gradients(self) -> Dict[str, np.ndarray]:
        return dict(self.named_grads())

    def num_parameters(self) -> int:
        return int(sum(v.size for _, v in self.named_parameters()))

    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for prefix, m in self.named_modules():
            if m._caches:
                name = prefix.rstrip(".") or type(m).__name__
                raise RuntimeError(f"zero_grad: module {name} ({type(m).__name__}) still holds "
                                   f"{len(m._caches)} cache(s) never consumed by backward: a forward in "
                                   f"training mode was not followed by its backward")
            for g in m.grads.values():
                g[...] = 0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of parameters and buffers by dotted name."""
        out = {}
        for prefix, m in self.named_modules():
            for k, v in list(m.params.items()) + list(m.buffers.items()):
                out[prefix + k] = v.copy()
        return out

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Copy arrays in; every key must match by name, shape and dtype (no silent cast)."""
        targets = {}
        for prefix, m in self.named_modules():
            for store in (m.params, m.buffers):
                for k in store:
                    targets[prefix + k] = (store, k)
        missing = sorted(set(targets) - set(state))
        extra = sorted(set(state) - set(targets))
        if missing or extra:
            raise ValueError(f"state: missing keys {missing}, unexpected keys {extra}")
        for name, (store, k) in targets.items():
            v = np.asarray(state[name])
            if v.shape != store[k].shape or v.dtype != store[k].dtype:
                raise ValueError(f"state[{name!r}]: expected shape {store[k].shape} dtype {store[k].dtype}, "
                                 f"got shape {v.shape} dtype {v.dtype}")
            store[k][...] = v


class ModuleList(Module):
    """A list of child modules named ``0``, ``1``, ... (``layers.2.W``)."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        self._items: List[Module] = list(modules)

    def children(self) -> Iterator[Tuple[str, Module]]:
        for i, m in enumerate(self._items):
            yield str(i), m

    def __getitem__(self, i: int) -> Module:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)

    def append(self, m: Module) -> None:
        self._items.append(m)
