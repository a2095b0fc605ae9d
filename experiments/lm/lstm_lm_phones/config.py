"""LSTM phone language model on the synthetic corpus' training transcripts plus WordNet text turned into
phones (experiments/lm/make_text.py; no dev/test sentence). A short CPU run: see RESULTS.md."""

CONFIG = dict(
    model="lstm_lm", hidden=128, num_layers=1, dropout=0.0,
    data_dir="/work/data/synth_full", exp_dir="exp/lm/lstm_lm_phones", units="phones",
    text_train="/work/data/lm_text/phones_6k.txt",
    epochs=8, max_minutes=14, batch_size=32, lr=2e-3, clip=1.0, schedule="newbob", patience=3,
    progress=False,
)
