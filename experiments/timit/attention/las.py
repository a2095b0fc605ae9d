"""Listen, Attend and Spell phone recogniser: pyramidal BiLSTM listener, LSTM speller with location-aware
attention (Chan et al. 2016; Chorowski et al. 2015), label smoothing and a joint CTC branch with weight
0.3 (Watanabe et al. 2017).

    scratchasr train experiments/timit/attention/las.py --data_dir=/path/to/TIMIT --exp_dir=exp/las

Time reduction 4 (2 stacked frames, then one pyramid layer): ~80 ms per encoder frame, about 1.5
frames per phone at the fastest synthetic speaking rate (CTC needs at least one). README.md here.
"""

CONFIG = dict(
    model="las",
    data_dir="data/synth_full",
    exp_dir="exp/las",
    hidden=128,            # per direction in the listener; speller LSTM cells
    num_layers=3,          # listener BiLSTM layers
    pyramid=1,             # the top layer reads pairs of frames
    stack=2,
    embed_dim=64,
    att_dim=64,
    conv_channels=10,
    conv_width=15,         # location filters over the previous attention weights
    dropout=0.1,
    label_smoothing=0.1,
    ctc_weight=0.3,        # lambda of the joint CTC branch
    sampling_prob=0.0,     # scheduled sampling off
    lr=1e-3,
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    lr_halving=True,
    seed=0,
)
