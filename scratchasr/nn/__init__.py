"""The module layer: ``Module`` with ``params``/``grads`` dicts and thin wrappers that call ops."""
from .mocha import MochaDecoder  # noqa: E402,F401
from .lstm import LSTM, from_torch_state_dict  # noqa: E402,F401
from .attention import MultiHeadAttention, RelPositionMultiHeadAttention  # noqa: E402,F401
from .module import Module, ModuleList  # noqa: E402,F401
from .layers import (GLU, BatchNorm, Conv1d, Conv2d, Dropout, Embedding, LayerNorm, Linear, ReLU,  # noqa: E402,F401
                     MaskedMeanPool, Sequential, Sigmoid, Swish, Tanh)
from .conformer import ConformerBlock, ConformerEncoder, Conv2dSubsampling  # noqa: E402,F401
