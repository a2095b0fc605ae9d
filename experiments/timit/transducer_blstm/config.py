"""BiLSTM transducer (RNN-T) phone recogniser (Graves, Mohamed & Hinton 2013 at laptop scale).

    scratchasr train experiments/timit/transducer_blstm/config.py --data_dir=/path/to/TIMIT --exp_dir=exp/rnnt

Any key can be overridden with --key=value (trainer keys: scratchasr/trainer.py TrainConfig; every other
key is an option of the "transducer" model, scratchasr/models/transducer.py). The encoder matches the
CTC recipe (experiments/timit/ctc_blstm: 2 x BiLSTM 256, stack 2), so PreTrans is one override:
--pretrained_encoder=exp/ctc_blstm/best.npz. Streaming variant: --bidirectional=false.
Dev decoding: beam 1 = greedy (max 3 labels per frame); --beam=N = modified beam search.
"""

CONFIG = dict(
    model="transducer",
    data_dir="/work/data/synth_full",
    exp_dir="exp/transducer_blstm",
    # encoder (as the CTC recipe)
    hidden=256,            # per direction
    num_layers=2,
    stack=2,               # 20 ms encoder steps
    bidirectional=True,
    dropout=0.2,           # between LSTM layers
    # prediction and joint networks
    pred_hidden=128,       # embedding + 1 x LSTM 128
    pred_layers=1,
    joint_dim=256,
    joint_chunk=1,         # joint + loss + its backward one utterance at a time (peak memory: RESULTS.md)
    fastemit_lambda=0.0,
    clamp=-1.0,
    pretrained_encoder="",  # PreTrans: a ctc_blstm checkpoint with the same encoder
    # trainer
    lr=1e-3,               # Adam
    clip=5.0,              # global gradient norm
    batch_size=16,
    epochs=30,
    patience=4,
    schedule="newbob",
    lr_halving=True,
    beam=1,
    seed=0,
)
