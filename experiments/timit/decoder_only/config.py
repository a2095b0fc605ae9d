"""Decoder-only phone recogniser (scratchasr/models/decoder_only.py): an audio prefix (6 stacked frames ->
2 bidirectional transformer blocks of width 128, projected into the GPT's 64-dim embedding space),
the separator (<sos>), then a 2-block GPT that writes the phones; cross-entropy on the phones only,
plus an auxiliary CTC loss (weight 0.3) on the encoder output, as the LAS recipe.

    scratchasr train experiments/timit/decoder_only/config.py --data_dir=/path/to/TIMIT \
        --exp_dir=exp/decoder_only [--init_gpt=exp/lm/gpt_lm_phones/best.npz]

The decoder's sizes (hidden 64, 2 layers, 4 heads, ff 256, max_len 160) are those of
experiments/lm/gpt_lm_phones, so a trained phone GPT initialises it with --init_gpt. README.md here.
"""

CONFIG = dict(
    model="decoder_only",
    data_dir="data/synth_full",
    exp_dir="exp/decoder_only",
    # the GPT decoder (= experiments/lm/gpt_lm_phones)
    hidden=64,
    num_layers=2,
    heads=4,
    ff=256,
    max_len=160,
    # the audio prefix
    stack=6,               # 60 ms per prefix vector (>= 2 per phone at the fastest synthetic rate)
    enc_layers=2,
    enc_hidden=128,
    causal_prefix=False,   # the prefix attends to itself both ways
    dropout=0.1,
    label_smoothing=0.1,
    ctc_weight=0.3,        # auxiliary CTC on the encoder (decoding uses the decoder alone by default)
    init_gpt="",
    # trainer
    lr=1e-3,               # Adam, peak of the Noam schedule
    schedule="noam",
    warmup_steps=300,
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    seed=0,
)
