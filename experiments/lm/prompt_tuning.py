"""Prompt tuning versus full fine-tuning of the phone GPT on a new domain (issue 15; Lester et al. 2021).

    nice -n 10 .venv/bin/python experiments/lm/prompt_tuning.py exp/lm/gpt_lm_phones/best.npz \
        /work/data/synth_full --out exp/lm/prompt_tuning

The base model (``gpt_lm`` on WordNet example sentences in TIMIT phones, experiments/lm) meets legal
prose: the US Constitution from Debian's ``miscfiles`` (/usr/share/state/us-constitution.gz, public
domain). Its paragraphs are cut into clauses at ``. ; :`` (3-30 words, the LM text's range), turned into
phones with festival's CMU lexicon exactly as the LM's text was (scratchasr/data/text.py: ``h#`` at both
ends, ``pau`` at commas; clauses with a word missing from the lexicon dropped), shuffled with a seed and
split 65 / 10 / 25 % into train / dev / test clauses. Overlap with the corpus' dev and test sentences is
checked (0).

Compared on the test clauses (perplexity per phone, ``<eos>`` counted, docs/equations/lm.md [lm:ppl]):
no adaptation; prompt tuning with k prompt vectors (k x E trained numbers, scratchasr/models/
prompt_tuning.py); full fine-tuning (every parameter). Each adapted model is also scored on the original
domain (the corpus' core_test phone transcripts): prompt tuning leaves the base model untouched, fine-tuning
may forget. Adam, gradient clipping at 1, batch 16, the epoch with the best dev perplexity kept. Writes
OUT/results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from pathlib import Path

import numpy as np

from scratchasr.data.batch import bucket_batches, make_batch
from scratchasr.data.corpus import normalise_text, read_split
from scratchasr.data.text import held_out_sentences, read_cmu_lexicon, words_to_phones
from scratchasr.inference import load
from scratchasr.models.prompt_tuning import PromptTunedLM
from scratchasr.optim import Adam, clip_grad_norm

CONSTITUTION = Path("/usr/share/state/us-constitution.gz")


def _words(s: str) -> int:
    return len(normalise_text(s).split())


def constitution_clauses(path=CONSTITUTION, min_words=3, max_words=30) -> list:
    """Clauses of the Constitution's prose paragraphs, cut at ``. ; :`` and, when still longer than
    ``max_words``, at commas into runs of at most ``max_words`` words (headings such as "Section 2" are
    too short and skipped)."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: not found (`apt-get install miscfiles`)")
    text = gzip.open(path, "rt", encoding="latin-1").read()
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        for clause in re.split(r"[.;:](?:\s+|$)", para):
            pieces, cur = [], ""
            for part in (clause.split(",") if _words(clause) > max_words else [clause]):
                if cur and _words(cur) + _words(part) > max_words:
                    pieces.append(cur)
                    cur = part
                else:
                    cur = f"{cur},{part}" if cur else part
            pieces.append(cur)
            out += [p.strip() for p in pieces if min_words <= _words(p) <= max_words]
    return out


def train(model, params, grads, train_seqs, dev_seqs, *, lr, epochs, batch_size, seed, log):
    """Adam on ``params`` (the arrays an optimizer may touch); returns the best dev perplexity and epoch,
    with the best epoch's arrays written back into ``params``."""
    opt = Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    model.eval()
    best, best_epoch, best_arrays = model.perplexity(dev_seqs), 0, {k: v.copy() for k, v in params.items()}
    log(f"  epoch 0 dev ppl {best:.3f}")
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.time()
        for idx in bucket_batches([len(s) for s in train_seqs], batch_size, rng):
            b = make_batch(None, [train_seqs[i] for i in idx])
            model.zero_grad()
            loss, stats = model.forward_loss(b)
            model.backward(np.full(len(idx), 1.0 / stats["tokens"]))    # mean loss per token
            clip_grad_norm(grads, 1.0)
            opt.step(grads)
        model.eval()
        ppl = model.perplexity(dev_seqs)
        log(f"  epoch {epoch} dev ppl {ppl:.3f} ({time.time() - t0:.0f} s)")
        if ppl < best:
            best, best_epoch, best_arrays = ppl, epoch, {k: v.copy() for k, v in params.items()}
    for k, v in best_arrays.items():
        params[k][...] = v
    return best, best_epoch


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lm", help="a gpt_lm checkpoint (phones)")
    ap.add_argument("corpus", help="the TIMIT-layout corpus (held-out check, original-domain perplexity)")
    ap.add_argument("--out", default="exp/lm/prompt_tuning")
    ap.add_argument("--prompt-lengths", default="1,4,16")
    ap.add_argument("--shifted-lengths", default="16",
                    help="prompt lengths also run with shift_positions=True ('' for none)")
    ap.add_argument("--prompt-lr", type=float, default=0.3)
    ap.add_argument("--finetune-lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.txt", "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    lm, _ = load(args.lm)
    vocab = lm.vocabulary
    clauses = constitution_clauses()
    held = held_out_sentences(args.corpus)
    lexicon = read_cmu_lexicon()
    seqs, texts, oov = [], [], 0
    kmax = max(int(k) for k in (args.prompt_lengths + "," + args.shifted_lengths).split(",") if k)
    for c in dict.fromkeys(clauses):                      # duplicates dropped, order kept
        phones = words_to_phones(c, lexicon)
        if phones is None:
            oov += 1
            continue
        if len(phones) + kmax + 1 > lm.max_len:
            continue
        seqs.append(vocab.encode(phones).tolist())
        texts.append(normalise_text(c))
    overlap = len(set(texts) & held)
    perm = np.random.default_rng(args.seed).permutation(len(seqs))
    n_tr, n_dv = int(0.65 * len(seqs)), int(0.10 * len(seqs))
    tr = [seqs[i] for i in perm[:n_tr]]
    dv = [seqs[i] for i in perm[n_tr:n_tr + n_dv]]
    te = [seqs[i] for i in perm[n_tr + n_dv:]]
    orig = [vocab.encode(u.tokens).tolist() for u in read_split(args.corpus, "core_test", "phones")]
    data = dict(clauses=len(clauses), dropped_oov=oov, kept=len(seqs), train=len(tr), dev=len(dv),
                test=len(te), train_phones=sum(map(len, tr)), test_phones=sum(map(len, te)),
                overlap_with_corpus_dev_test=overlap)
    log(json.dumps(data))
    E = lm.tok.params["W"].shape[1]
    rows = []
    base = {k: v.copy() for k, v in lm.parameters().items()}

    lm.eval()
    rows.append(dict(method="no adaptation", trained=0, dev=lm.perplexity(dv), test=lm.perplexity(te),
                     original=lm.perplexity(orig), epoch=0, seconds=0.0))
    log(json.dumps(rows[-1]))
    runs = [(int(k), False) for k in args.prompt_lengths.split(",") if k]
    runs += [(int(k), True) for k in args.shifted_lengths.split(",") if k]
    for k, shift in runs:
        what = f"prompt tuning, k = {k}" + (", shifted positions" if shift else "")
        log(f"{what} ({k} x {E} = {k * E} numbers), lr {args.prompt_lr}")
        m = PromptTunedLM(lm, prompt_length=k, seed=args.seed, shift_positions=shift)
        t0 = time.time()
        dev, ep = train(m, m.trainable_parameters(), m.trainable_gradients(), tr, dv, lr=args.prompt_lr,
                        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, log=log)
        assert all(np.array_equal(v, base[n]) for n, v in lm.parameters().items()), "the base model moved"
        m.eval()
        rows.append(dict(method=what, trained=m.num_trainable(), dev=dev,
                         test=m.perplexity(te), original=m.perplexity(orig), epoch=ep,
                         seconds=time.time() - t0))
        log(json.dumps(rows[-1]))
    log(f"full fine-tuning ({lm.num_parameters()} numbers), lr {args.finetune_lr}")
    t0 = time.time()
    dev, ep = train(lm, lm.parameters(), lm.gradients(), tr, dv, lr=args.finetune_lr, epochs=args.epochs,
                    batch_size=args.batch_size, seed=args.seed, log=log)
    lm.eval()
    rows.append(dict(method="full fine-tuning", trained=lm.num_parameters(), dev=dev, test=lm.perplexity(te),
                     original=lm.perplexity(orig), epoch=ep, seconds=time.time() - t0))
    log(json.dumps(rows[-1]))
    result = dict(lm=args.lm, data=data, args=vars(args), rows=rows)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    log("| method | trained numbers | dev PPL | test PPL | original domain (core_test) PPL | best epoch |")
    log("|---|---|---|---|---|---|")
    for r in rows:
        log(f"| {r['method']} | {r['trained']:,} | {r['dev']:.2f} | {r['test']:.2f} | {r['original']:.2f} | "
            f"{r['epoch']} |")
    return result


if __name__ == "__main__":
    main()
