"""Prompt tuning (scratchasr/models/prompt_tuning.py): the prompt's hand-derived gradient equals finite
differences (float64), training it leaves every base parameter unchanged, the prompt acts exactly as
input embeddings would, and the step interface equals the full forward."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.models._lm import frame_sentences
from scratchasr.models.prompt_tuning import PromptTunedLM
from scratchasr.optim import Adam
from scratchasr.testing import gradcheck, model_gradcheck

V = 7
SENTS = [[1, 2, 2, 5], [3], [6, 1, 4, 4, 2]]


def _gpt(seed=0, max_len=14, scale=3.0):
    m = models.build("gpt_lm", input_dim=None, vocab_size=V, dtype=np.float64, seed=seed, hidden=8,
                     num_layers=2, heads=2, max_len=max_len)
    for p in m.parameters().values():       # sharper than the init, so that differences show
        p[...] *= scale
    return m


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.mark.parametrize("shift", [False, True])
def test_prompt_gradient_equals_finite_differences(shift):
    m = PromptTunedLM(_gpt(), prompt_length=3, seed=1, shift_positions=shift)
    m.params["prompt"][...] = np.random.default_rng(0).normal(0, 1.5, m.params["prompt"].shape)
    m.train()
    batch = make_batch(None, SENTS)

    def forward(P):
        m.params["prompt"][...] = P
        loss, _ = m.forward_loss(batch)
        m.clear_caches()
        return loss, None

    def backward(dloss, _):
        m.zero_grad()
        m.forward_loss(batch)
        m.backward(dloss)
        return (m.grads["prompt"].copy(),)

    report = gradcheck(forward, backward, [m.params["prompt"].copy()], rtol=1e-6)
    m.clear_caches()
    assert report.ok, str(report)
    # and every array of the wrapped model (the frozen base's gradients are computed on the way); at the
    # init's scale, as the contract's check of gpt_lm (sharper weights leave gradients of 1e-6 in noise)
    m = PromptTunedLM(_gpt(scale=1.0), prompt_length=3, seed=1, shift_positions=shift)
    m.train()
    full = model_gradcheck(m, make_batch(None, SENTS[:2]))
    assert full.ok, str(full)


def test_a_wrong_prompt_gradient_is_caught():
    m = PromptTunedLM(_gpt(), prompt_length=2)
    m.train()
    batch = make_batch(None, SENTS)

    def forward(P):
        m.params["prompt"][...] = P
        loss, _ = m.forward_loss(batch)
        m.clear_caches()
        return loss, None

    def backward(dloss, _):
        m.zero_grad()
        m.forward_loss(batch)
        m.backward(dloss)
        return (m.grads["prompt"][::-1].copy(),)      # the two prompt rows swapped

    report = gradcheck(forward, backward, [m.params["prompt"].copy()])
    m.clear_caches()
    assert not report.ok


def test_training_the_prompt_leaves_the_base_model_unchanged():
    base = _gpt()
    before = {k: v.copy() for k, v in base.parameters().items()}
    m = PromptTunedLM(base, prompt_length=4)
    p0 = m.params["prompt"].copy()
    m.train()
    opt = Adam(m.trainable_parameters(), lr=0.03)
    batch = make_batch(None, SENTS)
    losses = []
    for _ in range(20):
        m.zero_grad()
        loss, _ = m.forward_loss(batch)
        losses.append(float(loss.sum()))
        m.backward(np.ones_like(loss))
        opt.step(m.trainable_gradients())
    assert list(m.trainable_parameters()) == ["prompt"] and m.num_trainable() == 4 * 8
    for k, v in base.parameters().items():
        assert np.array_equal(v, before[k]), k
    assert not np.allclose(m.params["prompt"], p0)
    assert losses[-1] < losses[0] - 1.0            # the prompt alone fits the three sentences better


def test_the_prompt_acts_as_input_embeddings():
    """With shifted positions, prompt vectors equal to token embeddings give the base model's logits for
    those tokens prepended."""
    base = _gpt()
    base.eval()
    m = PromptTunedLM(base, prompt_length=3, seed=5, shift_positions=True)
    ids = [4, 1, 6]
    m.params["prompt"][...] = base.tok.params["W"][ids]
    batch = make_batch(None, SENTS)
    inputs, _, lengths = frame_sentences(batch.targets, batch.target_lengths)
    ours = m.logits(inputs, lengths)
    theirs = base.logits(np.concatenate([np.tile(ids, (len(SENTS), 1)), inputs], axis=1), lengths + 3)[:, 3:]
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(ours[b, :L], theirs[b, :L], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shift", [False, True])
def test_step_interface_equals_the_full_forward_and_score(shift):
    m = PromptTunedLM(_gpt(), prompt_length=3, seed=2, shift_positions=shift)
    m.eval()
    batch = make_batch(None, SENTS)
    inputs, outputs, lengths = frame_sentences(batch.targets, batch.target_lengths)
    full = _log_softmax(m.logits(inputs, lengths))
    state = m.init_state(len(SENTS))
    assert np.all(state.pos == 3)
    total = np.zeros(len(SENTS))
    for t in range(inputs.shape[1]):
        lp, state = m.step(state, inputs[:, t])
        for b, L in enumerate(lengths):
            if t < L:
                np.testing.assert_allclose(lp[b], full[b, t], rtol=1e-10, atol=1e-12)
                total[b] += lp[b, outputs[b, t]]
    np.testing.assert_allclose(m.score(batch), total, rtol=1e-10)
    assert m.perplexity(SENTS) > 1.0


def test_arguments_are_checked_by_name():
    base = _gpt(max_len=8)
    with pytest.raises(ValueError, match=r"^prompt_length:"):
        PromptTunedLM(base, prompt_length=0)
    with pytest.raises(ValueError, match=r"^prompt_length:"):
        PromptTunedLM(base, prompt_length=7)
    lstm = models.build("lstm_lm", input_dim=None, vocab_size=V, dtype=np.float64, hidden=8)
    with pytest.raises(TypeError, match=r"^lm:"):
        PromptTunedLM(lstm, prompt_length=2)
    with pytest.raises(TypeError, match=r"^shift_positions:"):
        PromptTunedLM(base, prompt_length=2, shift_positions=1)
    m = PromptTunedLM(base, prompt_length=4)
    with pytest.raises(ValueError, match=r"^batch.targets:"):
        m.forward_loss(make_batch(None, [[1, 2, 3, 4]]))        # 4 + 4 + 1 > max_len 8
    m.forward_loss(make_batch(None, [[1, 2, 3]]))               # 3 + 4 + 1 fits
