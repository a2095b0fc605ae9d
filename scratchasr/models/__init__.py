"""Registered models (API.md "scratchasr.models"): ``available()``, ``build(name, ...)``, the ``Model`` base.

Importing this package imports every model file of the project, which registers it. A model defined
elsewhere registers itself with ``@models.register("name")`` on import; recipes list such modules in
their config's ``imports`` so that the trainer and ``scratchasr.inference.load`` import them first.
"""

from .base import Model, available, build, build_from_config, check_batch, gather_state, register
from . import ctc_blstm  # noqa: F401  (registers "ctc_blstm")
from . import transducer  # noqa: F401  (registers "transducer")
from . import seq2seq  # noqa: F401  (registers "seq2seq")
from . import las  # noqa: F401  (registers "las")
from . import mocha  # noqa: F401  (registers "mocha")
from . import conformer  # noqa: F401  (registers "conformer_ctc", "conformer_transducer")
from . import lstm_lm  # noqa: F401  (registers "lstm_lm")
from . import gpt_lm  # noqa: F401  (registers "gpt_lm")
from . import decoder_only  # noqa: F401  (registers "decoder_only")

__all__ = ["Model", "available", "build", "build_from_config", "check_batch", "gather_state", "register"]
