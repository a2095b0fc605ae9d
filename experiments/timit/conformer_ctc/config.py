"""Conformer-CTC phone recogniser (Gulati et al. 2020 at CPU scale: the "S" shape cut to 4 blocks of 144).

    scratchasr train experiments/timit/conformer_ctc/config.py --data_dir=/path/to/TIMIT \
        --exp_dir=exp/conformer_ctc

x4 convolutional subsampling (40 ms encoder frames), 4 Conformer blocks (E=144, 4 heads, FFN 576,
depthwise kernel 15), linear output, CTC. SpecAugment and the Noam warm-up come from the trainer.
Streaming variant: --chunk_size=4 --left_chunks=4 --causal=true (160 ms chunks, 640 ms of left context).
"""

CONFIG = dict(
    model="conformer_ctc",
    data_dir="data/synth_full",
    exp_dir="exp/conformer_ctc",
    # model options
    hidden=144,
    num_layers=4,
    heads=4,
    ff_mult=4,
    conv_kernel=15,
    dropout=0.1,
    chunk_size=0,        # 0: full attention (offline)
    left_chunks=-1,
    causal=False,
    sub_channels=32,     # subsampling convolutions: 32 channels cost ~20x less than 144 (9 C^2 per cell)
    # trainer
    lr=2e-3,             # Adam, peak of the Noam schedule (reached at warmup_steps)
    schedule="noam",
    warmup_steps=500,
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    spec_augment=True,
    seed=0,
)
