"""BiLSTM-CTC phone recogniser (Graves et al. 2013 at laptop scale).

    scratchasr train experiments/timit/ctc_blstm/config.py --data_dir=/path/to/TIMIT --exp_dir=exp/ctc_blstm

Any key can be overridden with --key=value (trainer keys: scratchasr/trainer.py TrainConfig; every other
key is an option of the model). The same config runs on real TIMIT (data_dir = the folder holding
TRAIN/ and TEST/) and on the synthetic corpus from `scratchasr synth-timit`.
"""

CONFIG = dict(
    model="ctc_blstm",
    data_dir="data/synth_full",
    exp_dir="exp/ctc_blstm",
    # model options
    hidden=256,          # per direction
    num_layers=2,
    stack=2,             # 2 frames stacked: 20 ms steps, halves the recurrent work
    dropout=0.2,
    # trainer
    lr=2e-3,             # Adam
    clip=5.0,            # global gradient norm
    batch_size=16,
    epochs=30,
    patience=4,
    schedule="newbob",
    lr_halving=True,     # halve the learning rate when dev PER does not improve
    seed=0,
)
