"""The equation layer: pure NumPy ``<op>_forward`` / ``<op>_backward`` pairs.

Each module holds a few ops, their NamedTuple caches and tags into ``docs/equations/``.
"""
from .linear import linear_backward, linear_forward  # noqa: E402,F401
from .activations import (glu_backward, glu_forward, relu_backward, relu_forward, sigmoid,  # noqa: E402,F401
                          sigmoid_backward, sigmoid_forward, swish_backward, swish_forward, tanh_backward,
                          tanh_forward)
from .softmax import (log_softmax_backward, log_softmax_forward, softmax_backward,  # noqa: E402,F401
                      softmax_forward)
from .norm import (batch_norm_backward, batch_norm_forward, layer_norm_backward,  # noqa: E402,F401
                   layer_norm_forward)
from .conv import (conv1d_backward, conv1d_forward, conv2d_backward, conv2d_forward,  # noqa: E402,F401
                   conv_out_lengths, conv_output_lengths)
from .pooling import (masked_mean_backward, masked_mean_forward, mean_pool_backward,  # noqa: E402,F401
                      mean_pool_forward)
from .embedding import embedding_backward, embedding_forward  # noqa: E402,F401
from .dropout import dropout_backward, dropout_forward, dropout_mask  # noqa: E402,F401
from .lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward  # noqa: E402,F401
from .attention import (causal_mask, chunk_mask, mha_backward, mha_forward, padding_mask,  # noqa: E402,F401
                        sdpa_backward, sdpa_forward, sinusoidal_positions)
from .rel_attention import rel_mha_backward, rel_mha_forward, rel_positions  # noqa: E402,F401
from .additive_attention import (additive_attention_backward, additive_attention_forward,  # noqa: E402,F401
                                 location_attention_backward, location_attention_forward)
from .mocha import (hard_monotonic_attention, mocha_chunk_backward, mocha_chunk_forward,  # noqa: E402,F401
                    monotonic_attention_backward, monotonic_attention_forward)
from .mocha_energy import (chunk_energy_backward, chunk_energy_forward,  # noqa: E402,F401
                           monotonic_energy_backward, monotonic_energy_forward,
                           monotonic_probability_backward, monotonic_probability_forward)
