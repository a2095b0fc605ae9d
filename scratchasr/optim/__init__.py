"""Optimizers (SGD, Adam, AdamW), global-norm clipping and learning-rate schedules.

Update rules: docs/equations/optim.md.
"""
from .clip import clip_grad_norm, global_norm  # noqa: F401
from .optimizers import SGD, Adam, AdamW, Optimizer  # noqa: F401
from .schedules import NewBob, constant, cosine_with_warmup, exponential_decay, noam  # noqa: F401
