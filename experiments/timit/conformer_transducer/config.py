"""Conformer-transducer phone recogniser: the conformer_ctc encoder (4 x 144, x4 subsampling) with the
transducer recipe's prediction network (1 x 128 LSTM) and joint network (256, tanh).

    scratchasr train experiments/timit/conformer_transducer/config.py --data_dir=/path/to/TIMIT \
        --exp_dir=exp/conformer_transducer

Streaming variant (decode with model.stream + decode.transducer.greedy_search, frame-synchronous):
--chunk_size=4 --left_chunks=4 --causal=true (160 ms chunks, 640 ms of left context).
Not trained here yet (see ../conformer_ctc/RESULTS.md for the CPU budget this machine had).
"""

CONFIG = dict(
    model="conformer_transducer",
    data_dir="data/synth_full",
    exp_dir="exp/conformer_transducer",
    # encoder (as conformer_ctc)
    hidden=144,
    num_layers=4,
    heads=4,
    ff_mult=4,
    conv_kernel=15,
    dropout=0.1,
    chunk_size=0,
    left_chunks=-1,
    causal=False,
    sub_channels=32,
    # prediction and joint networks (as transducer_blstm)
    pred_hidden=128,
    pred_layers=1,
    joint_dim=256,
    joint_chunk=1,       # one utterance's lattice at a time (memory)
    # trainer
    lr=2e-3,
    schedule="noam",
    warmup_steps=500,
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    spec_augment=True,
    seed=0,
)
