"""Sequence building, last-token pooling and the discriminator's initialisation and update."""

from __future__ import annotations

import torch

from gad.training.config import RunConfig
from gad.training.discriminator import Discriminator, Group
from gad.training.modeling import (
    TokenInfo,
    build_sequence,
    load_discriminator,
    load_student,
    load_tokenizer,
    pad_sequences,
    score_sequences,
    split_response,
    token_info,
)

INFO = TokenInfo(pad_id=0, eot_id=2, stop_ids=frozenset({2, 3}))


def test_split_response_cuts_at_any_stop_token():
    assert split_response([5, 6, 3, 7], INFO) == ([5, 6], True)
    assert split_response([5, 6, 7], INFO) == ([5, 6, 7], False)
    assert split_response([5, 0, 0], INFO) == ([5], False)


def test_teacher_and_student_sequences_are_built_identically():
    # A student that stopped with a different stop token and a teacher response with its eot
    # appended must produce the same tokens for the same text.
    student = split_response([9, 8, 3, 0, 0], INFO)
    teacher = split_response([9, 8, 2], INFO)
    assert build_sequence([1, 4], *student, INFO) == build_sequence([1, 4], *teacher, INFO) == [1, 4, 9, 8, 2]
    assert build_sequence([1], [9], False, INFO) == [1, 9]


def test_score_is_taken_at_the_last_real_token_whatever_the_padding(tiny_model):
    cfg = RunConfig(student=str(tiny_model), data="x", output="y")
    tok = load_tokenizer(str(tiny_model))
    disc = load_discriminator(str(tiny_model), cfg, tok.pad_token_id, fresh_head_seed=0).eval()
    seq = tok("hello world", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    alone = score_sequences(disc, *pad_sequences([seq], tok.pad_token_id))
    longer = seq + tok(" and more words here", add_special_tokens=False)["input_ids"]
    batched = score_sequences(disc, *pad_sequences([seq, longer], tok.pad_token_id))
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_discriminator_starts_from_student_weights_with_a_fresh_head(tiny_model):
    cfg = RunConfig(student=str(tiny_model), data="x", output="y")
    tok = load_tokenizer(str(tiny_model))
    student = load_student(str(tiny_model), cfg)
    d1 = load_discriminator(str(tiny_model), cfg, tok.pad_token_id, fresh_head_seed=1)
    d2 = load_discriminator(str(tiny_model), cfg, tok.pad_token_id, fresh_head_seed=1)
    s_state = student.model.state_dict()
    for name, value in d1.model.state_dict().items():
        assert torch.equal(value, s_state[name]), name
    assert d1.score.weight.shape[0] == 1
    assert torch.equal(d1.score.weight, d2.score.weight)  # same seed, same head on every rank


def test_one_bradley_terry_step_raises_teacher_over_student(tiny_model):
    cfg = RunConfig(student=str(tiny_model), data="x", output="y")
    tok = load_tokenizer(str(tiny_model))
    info = token_info(tok, str(tiny_model))
    model = load_discriminator(str(tiny_model), cfg, tok.pad_token_id, fresh_head_seed=0)
    disc = Discriminator(model, info, lr=1e-2, weight_decay=0.0, grad_clip=1.0, micro_batch=3)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    groups = [Group(enc("Q: capital of France?"), enc("Paris."), True,
                    [(enc("Lyon maybe"), True), (enc("no idea"), False)]),
              Group(enc("Q: 2+2?"), enc("4"), True, [(enc("five"), True), (enc("22"), True)])]
    t0, s0 = disc.score(groups)
    gap0 = sum(t - sum(s) / len(s) for t, s in zip(t0, s0))
    pre, metrics = disc.step(groups)
    assert [[round(x, 4) for x in g] for g in pre] == [[round(x, 4) for x in g] for g in s0]  # pre-update
    for _ in range(5):
        disc.step(groups)
    t1, s1 = disc.score(groups)
    gap1 = sum(t - sum(s) / len(s) for t, s in zip(t1, s1))
    assert gap1 > gap0
    assert set(metrics) >= {"disc_loss", "disc_accuracy", "disc_teacher_score", "disc_student_score", "disc_lr"}


def test_precision_rules_keep_float32_master_weights():
    from gad.training.modeling import autocast_dtype, resolve_dtype

    assert resolve_dtype("auto") == torch.float32          # never pure bf16 weights by default
    assert resolve_dtype("bfloat16") == torch.bfloat16     # only when asked
    if not torch.cuda.is_available():
        assert autocast_dtype("auto") is None


def test_discriminator_step_under_bf16_autocast_updates_float32_weights(tiny_model):
    cfg = RunConfig(student=str(tiny_model), data="x", output="y")
    tok = load_tokenizer(str(tiny_model))
    info = token_info(tok, str(tiny_model))
    model = load_discriminator(str(tiny_model), cfg, tok.pad_token_id, fresh_head_seed=0)
    disc = Discriminator(model, info, lr=1e-3, weight_decay=0.0, grad_clip=1.0, autocast=torch.bfloat16)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    before = model.score.weight.detach().clone()
    _, metrics = disc.step([Group(enc("Q?"), enc("A."), True, [(enc("B"), True), (enc("C"), False)])])
    assert model.score.weight.dtype == torch.float32 and not torch.equal(before, model.score.weight)
    assert all(v == v for v in metrics.values())           # finite, no NaN
