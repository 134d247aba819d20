"""Decoder-only students: presets, tokenizer, the prompt-masked loss, pad = EOS, left-padded
decoding, the calculator, LoRA on quantized weights, and the offline GGUF student."""

import dataclasses
import random
import re

import pytest
import torch

from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.memory import defaults_gb
from cotdistill.evaluate.decoding import DecodeOptions, decode
from cotdistill.train.students.architectures import ARCHITECTURES
from cotdistill.train.students.batches import IGNORE, PadCollator, pad_rows
from cotdistill.train.students.causal import STOP_STRINGS, causal_tokenizer, load_student, prompt_text
from cotdistill.train.students.causal import encode as causal_encode
from cotdistill.train.students.training import resolve

from .conftest import section

TEXTS = [f"A coin is heads up. P{i} flips the coin. Is the coin still heads up? The answer is no." for i in range(30)]
CAUSAL = [
    "llama-tiny",
    "smollm2-135m",
    "smollm2-360m",
    "smollm2-1.7b",
    "qwen2.5-0.5b",
    "qwen2.5-1.5b",
    "llama-3.2-1b",
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
]


@pytest.fixture(scope="module")
def tiny():
    """(model, tokenizer): an untrained llama-tiny (random weights give varied outputs)."""
    torch.set_num_threads(1)
    model, tok = load_student(STUDENTS.get("llama-tiny"), TEXTS, seed=0)
    return model.eval(), tok


def test_causal_presets_and_their_defaults():
    assert [n for n, p in STUDENTS.items() if p.architecture == "causal"] == CAUSAL
    assert STUDENTS.get("llama-tiny").from_config and STUDENTS.get("smollm2-135m").offline
    assert not STUDENTS.get("smollm2-135m").from_config and STUDENTS.get("smollm2-135m").gguf_file.endswith(".gguf")
    assert STUDENTS.get("qwen2.5-0.5b").hub_id == "Qwen/Qwen2.5-0.5B"
    # per size: full finetuning up to 0.5B, 8-bit AdamW at 0.77B, LoRA on 8-bit / NF4 weights from 1B
    sizes = {n: (STUDENTS.get(n).lora, STUDENTS.get(n).quantization, STUDENTS.get(n).optimizer) for n in CAUSAL}
    assert sizes["qwen2.5-0.5b"] == sizes["gpt2"] == (False, "none", "adamw_torch_fused")
    assert sizes["gpt2-large"] == (False, "none", "adamw_bnb_8bit")
    assert sizes["llama-3.2-1b"] == (True, "8bit", "paged_adamw_8bit")
    assert sizes["qwen2.5-1.5b"] == sizes["smollm2-1.7b"] == (True, "4bit", "paged_adamw_8bit")
    for name in CAUSAL[1:]:  # the Hub sizes fit one 24 GB GPU under their defaults
        assert 1 < defaults_gb(STUDENTS.get(name)) < 24, name
    full = dataclasses.replace(STUDENTS.get("qwen2.5-1.5b"), lora=False, quantization="none")
    # LoRA on NF4 weights cuts the weights' and optimizer's share (compared at batch 1) to a
    # third or less; the activations, which both train with, stay (issue 23's estimate counts
    # more of them: at the preset's batch 8, 8.9 against 25.0 GB)
    assert defaults_gb(STUDENTS.get("qwen2.5-1.5b"), 1) < defaults_gb(full, 1) / 3
    assert defaults_gb(STUDENTS.get("qwen2.5-1.5b")) < defaults_gb(full) / 2.5
    cfg = resolve(section("train"), STUDENTS.get("llama-3.2-1b"))
    assert cfg.lora and cfg.quantization == "8bit" and cfg.batch_size * cfg.grad_accum == 64


def test_config_built_causal_student_matches_its_preset(tiny):
    model, tok = tiny
    assert type(model).__name__ == "LlamaForCausalLM" and not model.config.is_encoder_decoder
    # 298 tokens here; the preset's size is for its full 1,000-token vocabulary
    assert 3.0 < sum(p.numel() for p in model.parameters()) / 1e6 < STUDENTS.get("llama-tiny").params_m


def test_causal_tokenizer_has_bos_eos_pad_and_survives_a_reload(tmp_path):
    tok = causal_tokenizer(TEXTS, 300)
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<pad>", "</s>", "<s>")
    ids = tok("Is the coin still heads up?")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids  # EOS ends completions, not prompts
    assert tok.decode(ids, skip_special_tokens=True) == "Is the coin still heads up?"
    assert tok.padding_side == tok.truncation_side == "left"
    tok.save_pretrained(tmp_path)
    from cotdistill.train.students.causal import load_tokenizer

    again = load_tokenizer(tmp_path)
    assert again("Is the coin still heads up?")["input_ids"] == ids and again.padding_side == "left"
    char = causal_tokenizer(TEXTS, 300, "char")
    assert char.tokenize("Musk") == ["M", "u", "s", "k"]


def test_completion_tokens_are_the_only_labels(tiny):
    _, tok = tiny
    (row,) = causal_encode(tok, ["Is the coin still heads up?"], ["The answer is no."], 256, 256)
    prompt = tok(prompt_text("Is the coin still heads up?"))["input_ids"]
    completion = tok(" The answer is no.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert row["input_ids"] == prompt + completion
    assert row["labels"] == [IGNORE] * len(prompt) + completion
    # the prompt keeps its end (where the completion starts), the completion its start and EOS
    (cut,) = causal_encode(tok, ["Is the coin still heads up?"], ["The answer is no."], 5, 3)
    assert cut["input_ids"][:5] == [tok.bos_token_id] + prompt[-4:] and cut["labels"][5:] == completion[:2] + [
        tok.eos_token_id
    ]


def _loss(model, logits, labels):
    return model.loss_function(logits=logits, labels=labels, vocab_size=model.config.vocab_size)


def test_changing_a_prompt_token_label_does_not_change_the_loss(tiny):
    """The loss the Trainer uses (the model's own, on our labels) reads the completion only."""
    model, tok = tiny
    q = "A coin is heads up. Bo flips the coin. Is the coin still heads up?"
    rows = causal_encode(tok, [q, q.replace("Bo", "Al")], ["The answer is no.", "The answer is no."], 256, 256)
    a, b = (pad_rows([r], tok.pad_token_id) for r in rows)
    assert a["input_ids"].shape == b["input_ids"].shape and not torch.equal(a["input_ids"], b["input_ids"])
    logits = torch.randn(
        1, a["input_ids"].shape[1], model.config.vocab_size, generator=torch.Generator().manual_seed(0)
    )
    # the prompt tokens differ, so do what they would be labelled; the loss does not move
    assert torch.equal(_loss(model, logits, a["labels"]), _loss(model, logits, b["labels"]))
    unmasked = a["input_ids"].clone()  # the same labels with the prompt left in
    assert not torch.allclose(_loss(model, logits, unmasked), _loss(model, logits, a["labels"]))
    other = causal_encode(tok, [q], ["The answer is yes."], 256, 256)[0]  # a completion token moves it
    c = pad_rows([other], tok.pad_token_id)
    if c["labels"].shape == a["labels"].shape:
        assert not torch.equal(_loss(model, logits, c["labels"]), _loss(model, logits, a["labels"]))
    # and the model's loss on a real forward pass equals the mean over completion tokens alone
    with torch.no_grad():
        out = model(**a)
    logp = torch.log_softmax(out.logits[0, :-1], -1)
    target = a["labels"][0, 1:]
    keep = target != IGNORE
    manual = -logp[keep.nonzero().flatten(), target[keep]].mean()
    assert torch.allclose(out.loss, manual, atol=1e-5)


def test_eos_stays_a_label_when_it_is_also_the_pad_token(tiny):
    _, tok = tiny
    eos = tok.eos_token_id
    rows = causal_encode(tok, ["a short one?", "a much longer question than that?"], ["yes", "no"], 256, 256)
    batch = PadCollator(pad_id=eos)(rows)  # GPT-2 / Llama 3 style: no pad token, EOS pads
    short = batch["labels"][0]
    n = len(rows[0]["input_ids"])
    assert short[n - 1] == eos and (short[n:] == IGNORE).all()  # the completion's EOS counts, padding does not
    assert (batch["attention_mask"][0, n:] == 0).all() and (batch["input_ids"][0, n:] == eos).all()


def test_left_padded_batches_decode_as_one_at_a_time(tiny):
    model, tok = tiny
    rng = random.Random(0)
    questions = [" ".join(rng.choice(TEXTS[0].split()) for _ in range(rng.randint(2, 14))) for _ in range(9)]
    prompts = [prompt_text(q) for q in questions]
    opts = DecodeOptions(max_new_tokens=12)
    batched = decode(model, tok, prompts, 16, opts, progress=False)
    single = [decode(model, tok, [p], 1, opts, progress=False)[0] for p in prompts]
    assert batched == single and len(set(batched)) > 1


def test_decoding_stops_at_a_stop_string(tiny):
    from cotdistill.evaluate.decoding import cut_at_stop

    assert cut_at_stop("The answer is no.\nQuestion: more", STOP_STRINGS) == "The answer is no."
    assert cut_at_stop("no stop here", STOP_STRINGS) == "no stop here"
    model, tok = tiny
    prompts = [prompt_text(t) for t in TEXTS[:4]]
    plain = decode(model, tok, prompts, 4, DecodeOptions(max_new_tokens=30), progress=False)
    stopped = decode(model, tok, prompts, 4, DecodeOptions(max_new_tokens=30), progress=False, stop_strings=(" ",))
    assert all(" " not in s and p.startswith(s) for s, p in zip(stopped, plain))


@pytest.fixture(scope="module")
def arithmetic():
    """The toy causal student, trained to a stated loss (toy.py), not for a fixed number of
    steps: a fixed count left it short of the format on some CPUs ("The answer answer ...")."""
    from cotdistill.train.students.toy import toy_causal_arithmetic_student

    torch.set_num_threads(1)
    return toy_causal_arithmetic_student()


@pytest.mark.slow
def test_trained_causal_student_batches_like_single_and_takes_the_calculator(arithmetic):
    from cotdistill.text.calculator import find_equations
    from cotdistill.train.students.toy import addition_pair

    from .test_eval_decoding import closed, same_before_first_eq

    model, tok = arithmetic
    rng = random.Random(1)
    prompts = [prompt_text(addition_pair(rng)[0]) for _ in range(16)]
    prompts.append(prompt_text("What is 5 plus 7? Please add them, the numbers are small and friendly."))
    opts = DecodeOptions(max_new_tokens=24)
    plain = decode(model, tok, prompts, 32, opts, progress=False, stop_strings=STOP_STRINGS)
    assert plain[::4] == [
        decode(model, tok, [p], 1, opts, progress=False, stop_strings=STOP_STRINGS)[0] for p in prompts[::4]
    ]
    assert all("The answer is" in o and "\n" not in o for o in plain), plain  # it learnt the format
    # and to stop (the line above cannot tell: decoding cuts at the '\n' stop string): most
    # outputs end with their answer sentence, not cut off by the token budget
    assert sum(o.endswith(".") for o in plain) >= 3 * len(plain) // 4, plain
    calc = decode(model, tok, prompts, 32, opts, progress=False, calculator=True, stop_strings=STOP_STRINGS)
    assert all(same_before_first_eq(p, c) for p, c in zip(plain, calc))
    wrong = [e for o in plain for e in find_equations(o) if not e.holds]
    assert wrong, "the toy student should write some false sums"
    # forced: "a + b = v" with v closed ("37 + 93 = 13" is not forced in "37 + 93 = 130 = 13",
    # where the student chained its own claim onto the forced 130)
    forced = [e for o in calc for e in find_equations(o) if re.search(closed(f"{e.expression} = {e.stated}"), o)]
    assert forced and all(e.holds for e in forced)
    # an '=' in the prompt is context: the calculator answers only what the student writes
    eq_prompt = [prompt_text("We know 2 + 2 = 4. What is 11 plus 12?")]
    assert decode(model, tok, eq_prompt, 1, opts, progress=False, calculator=True, stop_strings=STOP_STRINGS)


@pytest.mark.slow
@pytest.mark.parametrize("quantization,lora_save", [("8bit", "adapter"), ("4bit", "merged")])
def test_causal_lora_on_quantized_weights_trains_saves_and_loads_back(tmp_path, quantization, lora_save):
    from cotdistill.train.students.causal import apply_lora, load_trained, save_trained
    from cotdistill.train.students.training import train

    preset = STUDENTS.get("llama-tiny")
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
            optimizer="adamw_torch",
            lora_r=4,
        ),
        preset,
    )
    model, tok = load_student(preset, TEXTS, seed=0, quantization=quantization, base_dir=tmp_path / "base")
    assert getattr(model, f"is_loaded_in_{quantization}")
    model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, False)
    pairs = [(t.rsplit(" The answer", 1)[0], "The answer is no.") for t in TEXTS]
    metrics, history = train(
        model, tok, pairs, pairs[:4], cfg, tmp_path / "ckpt", seed=0, arch=ARCHITECTURES.get("causal")
    )
    losses = [h["loss"] for h in history if "loss" in h]
    assert metrics["steps"] == 6 and losses[-1] < losses[0] and "eval_loss" in metrics
    assert metrics["trainable_params_m"] < 0.05
    out = tmp_path / "out"
    out.mkdir()
    assert save_trained(model, tok, out, lora_save, str(tmp_path / "base")) == lora_save
    import json

    (out / "run.json").write_text(json.dumps({"resolved_train": {"quantization": quantization}}))
    loaded = load_trained(out)
    prompts = [prompt_text(pairs[0][0])]
    if lora_save == "adapter":
        assert type(loaded).__name__ == "PeftModelForCausalLM" and (out / "base" / "model.safetensors").exists()
        model.eval()
        assert decode(model, tok, prompts, 1, progress=False) == decode(loaded, tok, prompts, 1, progress=False)
    else:
        assert type(loaded).__name__ == "LlamaForCausalLM" and not (out / "adapter_config.json").exists()
        assert decode(loaded, tok, prompts, 1, progress=False)


@pytest.mark.slow
def test_offline_gguf_student_loads_with_eos_as_pad_and_a_finite_masked_loss(tmp_path):
    """smollm2-135m: the teacher's GGUF file from the pip package, as a student."""
    model, tok = load_student(STUDENTS.get("smollm2-135m"), [], seed=0)
    assert type(model).__name__ == "LlamaForCausalLM" and 130 < sum(p.numel() for p in model.parameters()) / 1e6 < 140
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2 pads with its EOS: masked by position
    batch = pad_rows(
        causal_encode(tok, ["Is 2 + 2 = 4?", "Yes?"], ["The answer is yes.", "no"], 64, 16), tok.pad_token_id
    )
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)
    model.save_pretrained(tmp_path)  # the dequantized weights save as a plain folder (a LoRA base)
    assert (tmp_path / "model.safetensors").exists()
