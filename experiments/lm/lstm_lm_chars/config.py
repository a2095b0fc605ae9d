"""LSTM character language model for the ctc_chars recipe: the corpus' training transcripts plus a seeded
8,000-sentence subset of the WordNet text (experiments/lm/subset_text.py; no dev/test sentence), in the
recipe's units (``units="chars"``: lower-case letters, apostrophe, ``|`` between words, normalised by
scratchasr.data.corpus.normalise_text as the recognizer's labels). A short CPU run: see RESULTS.md."""

CONFIG = dict(
    model="lstm_lm", hidden=128, num_layers=1, dropout=0.0,
    data_dir="/work/data/synth_full", exp_dir="/work/exp/lm_chars/lstm_lm_chars", units="chars",
    text_train="/work/data/lm_text/words_8k.txt",
    epochs=8, max_minutes=10, batch_size=32, lr=2e-3, clip=1.0, schedule="newbob", patience=3,
    progress=False,
)
