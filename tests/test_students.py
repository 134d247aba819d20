"""Student construction, the Hub loading path on a local checkpoint, and training."""

import pytest
import torch

from cotdistill.config import Params, TrainConfig
from cotdistill.students.model import build_from_config, load_pretrained, load_student, train_tokenizer
from cotdistill.students.presets import STUDENTS
from cotdistill.students.training import pairs_for_variant, resolve, train

TEXTS = [f"A coin is heads up. P{i} flips the coin. Is the coin still heads up? The answer is no." for i in range(30)]


def test_tokenizer_round_trip_and_specials():
    tok = train_tokenizer(TEXTS, 300)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("Is the coin still heads up?")["input_ids"]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Is the coin still heads up?"


def test_presets_have_sizes_and_resolve_defaults():
    assert {"t5-tiny", "t5-small", "t5-base", "t5-large", "t5-xl", "t5-xxl", "flan-t5-small", "flan-t5-xxl"} <= set(STUDENTS.names())
    assert STUDENTS.get("t5-xl").hub_id == "google/t5-v1_1-xl"
    assert STUDENTS.get("t5-xxl").training_memory_gb() > STUDENTS.get("t5-xl").training_memory_gb()
    cfg = resolve(TrainConfig(batch_size=None, learning_rate=0.01), STUDENTS.get("t5-small"))
    assert cfg.batch_size == 64 and cfg.learning_rate == 0.01
    if not torch.cuda.is_available():
        assert cfg.precision == "fp32"  # bf16 falls back without hardware support


def test_config_built_student_matches_preset_size():
    preset = STUDENTS.get("t5-tiny")
    tok = train_tokenizer(TEXTS, preset.tokenizer_vocab_size)
    model = build_from_config(preset, tok, seed=0)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    # the preset's size is for its full 1,000-token vocabulary; this corpus gives fewer
    assert 8.0 < n < preset.params_m + 0.5


def test_hub_path_loads_a_local_checkpoint(tmp_path):
    """The code path for google/t5-v1_1-* on a folder in the Hub's layout."""
    preset = STUDENTS.get("t5-mini")
    model, tok = load_student(preset, TEXTS, seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_pretrained(str(tmp_path))
    enc = ltok(["Is the coin still heads up?"], return_tensors="pt")
    with torch.no_grad():
        a = model.generate(**enc, max_new_tokens=5, do_sample=False)
        b = loaded.generate(**enc, max_new_tokens=5, do_sample=False)
    assert torch.equal(a, b)
    hub_preset = STUDENTS.get("t5-small").__class__(name="local", params_m=1, hub_id=str(tmp_path))
    m2, _ = load_student(hub_preset, [], seed=0)
    assert type(m2).__name__ == "T5ForConditionalGeneration"


def test_variants_pair_up():
    prepared = [{"question": "q1", "answer": "yes"}]
    filtered = [{"question": "q1", "target": "Steps. The answer is yes."}]
    assert pairs_for_variant("answer", prepared, filtered) == [("q1", "yes")]
    assert pairs_for_variant("cot", prepared, filtered) == [("q1", "Steps. The answer is yes.")]
    with pytest.raises(ValueError, match="allowed: answer, cot"):
        pairs_for_variant("gold2", prepared, filtered)


@pytest.mark.slow
def test_training_lowers_loss_and_resumes(tmp_path):
    preset = STUDENTS.get("t5-mini")
    pairs = [(t.rsplit(" The answer", 1)[0], "no") for t in TEXTS]
    cfg = resolve(TrainConfig(max_steps=8, batch_size=8, save_steps=4, eval_steps=4, logging_steps=1), preset)
    model, tok = load_student(preset, TEXTS, seed=0)
    metrics, history = train(model, tok, pairs, pairs[:4], cfg, tmp_path / "ckpt", seed=0)
    losses = [h["loss"] for h in history if "loss" in h]
    assert metrics["steps"] == 8 and losses[-1] < losses[0]
    assert metrics["resumed_from_step"] == 0 and "eval_loss" in metrics
    # A rerun of the same run (e.g. after a crash) continues from the last checkpoint.
    cfg12 = resolve(TrainConfig(max_steps=12, batch_size=8, save_steps=4, eval_steps=4, logging_steps=1), preset)
    model2, _ = load_student(preset, TEXTS, seed=0)
    metrics2, _ = train(model2, tok, pairs, pairs[:4], cfg12, tmp_path / "ckpt", seed=0)
    assert metrics2["resumed_from_step"] == 8 and metrics2["steps"] == 12
