"""Fixed-vector RNN encoder-decoder (no attention; Sutskever et al. 2014) phone recogniser.

    scratchasr train experiments/timit/attention/seq2seq.py --data_dir=/path/to/TIMIT --exp_dir=exp/seq2seq

The encoder's final LSTM states are everything the decoder sees of the utterance: the lecture's
bottleneck. Any key can be overridden with --key=value (README.md in this directory).
"""

CONFIG = dict(
    model="seq2seq",
    data_dir="data/synth_full",
    exp_dir="exp/seq2seq",
    hidden=256,            # encoder and decoder LSTM cells (the decoder starts from the encoder's states)
    num_layers=2,
    stack=3,               # 3 frames stacked: 30 ms encoder steps
    embed_dim=64,
    dropout=0.1,
    label_smoothing=0.1,
    lr=1e-3,               # Adam
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    lr_halving=True,
    seed=0,
)
