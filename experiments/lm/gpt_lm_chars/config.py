"""GPT (decoder-only transformer) character language model, same text and units as
experiments/lm/lstm_lm_chars (the longest training sentence has 157 characters + <eos>, hence max_len).
A short CPU run: see RESULTS.md."""

CONFIG = dict(
    model="gpt_lm", hidden=64, num_layers=2, heads=4, ff=256, max_len=160, dropout=0.0,
    data_dir="/work/data/synth_full", exp_dir="/work/exp/lm_chars/gpt_lm_chars", units="chars",
    text_train="/work/data/lm_text/words_8k.txt",
    epochs=8, max_minutes=10, batch_size=32, lr=1e-3, clip=1.0, schedule="newbob", patience=3,
    progress=False,
)
