"""End to end: real checkpoints through the same stages as the built-in students. The
offline GGUF student and the Hub presets (on local stand-ins of their checkpoints) are
fully finetuned, then trained with LoRA adapters, through `dvc repro` in a tiny copy of
the repository of their own (apart from test_pipeline.py's, so the two run side by side)."""

import json
from pathlib import Path

import pytest

from .conftest import run_cmd, venv_bin
from .test_pipeline import _copy_repo, _ran, _set

pytestmark = pytest.mark.slow

# A scored answer is all these tests need of evaluation: a few tokens of a 135M model, not 40
SHORT = {"max_new_tokens": 8}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    return _copy_repo(tmp_path_factory.mktemp("e2e_students") / "repo")


def test_offline_gguf_student_trains_full_and_with_lora_through_repro(tiny_repo):
    """smollm2-135m, the GGUF file the pip package ships, is a student like any other:
    fully finetuned, then with LoRA adapters, through the real stages. transformers marks
    a model loaded from GGUF as quantized, and the Trainer refused it (issue 23)."""
    root, env = tiny_repo
    saved = (root / "params.yaml").read_text()
    tiny = {"max_steps": 2, "batch_size": 2, "eval_steps": 2, "save_steps": 2}
    try:
        for variant, lora in (("answer", False), ("cot", True)):
            _set(root, model="smollm2-135m", train={"variants": [variant], "lora": lora, **tiny}, evaluate=SHORT)
            ran = _ran(run_cmd([venv_bin("dvc"), "repro"], root, env).stdout)
            assert {f"train@{variant}", f"evaluate@{variant}", "report"} <= ran
            trained = json.loads((root / f"metrics/train/{variant}.json").read_text())
            assert trained["steps"] == 2 and trained["saved_as"] == ("adapter" if lora else "full")
            assert 130 < trained["params_m"] < 140
            assert (root / f"models/{variant}/adapter_model.safetensors").exists() == lora
            scored = json.loads((root / f"metrics/evaluate/{variant}.json").read_text())
            assert scored["id"]["n"] == 8 and scored["ood"]["n"] == 8
    finally:
        (root / "params.yaml").write_text(saved)


# Hub presets run on a local stand-in of their checkpoint (tests/standins.py): the preset,
# the train settings a CPU needs (llama-3.2-1b's preset asks for 8-bit weights and a paged
# 8-bit AdamW), and what run.json records of the tokenizer the checkpoint brings.
STANDIN_CASES = {
    "t5-v1_1": ("t5-small", {}, "checkpoint: T5Tokenizer (sentencepiece unigram)"),
    "llama-3.2": (
        "llama-3.2-1b",
        {"quantization": "none", "optimizer": "adamw_torch_fused"},
        "checkpoint: TokenizersBackend (byte-level BPE)",
    ),
}


@pytest.mark.parametrize("standin_name", list(STANDIN_CASES))
def test_hub_preset_trains_on_a_local_standin_through_repro(tiny_repo, tmp_path_factory, standin_name):
    """A Hub student (T5 v1.1 with sentencepiece, Llama 3 with byte-level BPE, a BOS and no
    pad token) read from train.model_path, a folder in the Hub's layout: fully finetuned,
    then with LoRA adapters, through the real stages."""
    from .standins import standin

    root, env = tiny_repo
    folder = standin(standin_name, tmp_path_factory)
    preset, settings, tokenizer = STANDIN_CASES[standin_name]
    size_m = sum(t.numel() for t in _safetensors(folder / "model.safetensors").values()) / 1e6
    saved = (root / "params.yaml").read_text()
    tiny = {"max_steps": 2, "batch_size": 2, "eval_steps": 2, "save_steps": 2, "model_path": str(folder)}
    try:
        for variant, lora in (("answer", False), ("cot", True)):
            _set(root, model=preset, train={"variants": [variant], "lora": lora, **tiny, **settings}, evaluate=SHORT)
            ran = _ran(run_cmd([venv_bin("dvc"), "repro"], root, env).stdout)
            assert {"check", f"train@{variant}", f"evaluate@{variant}", "report"} <= ran
            trained = json.loads((root / f"metrics/train/{variant}.json").read_text())
            assert trained["steps"] == 2 and trained["saved_as"] == ("adapter" if lora else "full")
            # the checkpoint's parameters (plus the adapters' with LoRA), not the preset's
            adapters = trained["trainable_params_m"] if lora else 0
            assert abs(trained["params_m"] - adapters - size_m) < 0.01 and (not lora or 0 < adapters < size_m / 10)
            assert (root / f"models/{variant}/{'base/' if lora else ''}config.json").exists()
            assert (root / f"models/{variant}/adapter_model.safetensors").exists() == lora
            run = json.loads((root / f"models/{variant}/run.json").read_text())
            assert run["model"] == preset and run["resolved_train"]["tokenizer"] == tokenizer
            scored = json.loads((root / f"metrics/evaluate/{variant}.json").read_text())
            assert scored["id"]["n"] == 8 and scored["ood"]["n"] == 8
    finally:
        (root / "params.yaml").write_text(saved)


def _safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))
