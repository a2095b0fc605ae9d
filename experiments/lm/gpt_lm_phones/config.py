"""GPT (decoder-only transformer) phone language model, same text as experiments/lm/lstm_lm_phones.
A short CPU run: see RESULTS.md."""

CONFIG = dict(
    model="gpt_lm", hidden=64, num_layers=2, heads=4, ff=256, max_len=160, dropout=0.0,
    data_dir="/work/data/synth_full", exp_dir="exp/lm/gpt_lm_phones", units="phones",
    text_train="/work/data/lm_text/phones_6k.txt",
    epochs=8, max_minutes=16, batch_size=32, lr=1e-3, clip=1.0, schedule="newbob", patience=3,
    progress=False,
)
