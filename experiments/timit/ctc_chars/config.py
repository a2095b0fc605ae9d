"""BiLSTM-CTC character recogniser: the ctc_blstm recipe with units="chars" (issue 15).

    scratchasr train experiments/timit/ctc_chars/config.py --data_dir=/path/to/corpus --exp_dir=exp/ctc_chars

Same model, features and trainer as experiments/timit/ctc_blstm/config.py; only the labels change: the
normalised text of each utterance letter by letter (a-z and the apostrophe, "|" between words; the
normalisation is documented in scratchasr/data/corpus.py), so the output layer covers blank + the
characters seen in the training transcripts. `scratchasr decode` reports CER (sclite -c: no word
boundaries) and WER; `scratchasr transcribe` prints text.
"""

CONFIG = dict(
    model="ctc_blstm",
    units="chars",
    data_dir="data/synth_full",
    exp_dir="exp/ctc_chars",
    # model options (as ctc_blstm)
    hidden=256,          # per direction
    num_layers=2,
    stack=2,             # 20 ms steps: about 3 steps per character of TIMIT-rate speech, room for CTC blanks
    dropout=0.2,
    # trainer (as ctc_blstm)
    lr=2e-3,
    clip=5.0,
    batch_size=16,
    epochs=30,
    patience=4,
    schedule="newbob",
    lr_halving=True,     # halve the learning rate when the dev character error does not improve
    seed=0,
)
