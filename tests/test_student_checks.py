"""What a student run checks and records about itself (issue 23): the bitsandbytes settings a
preset chose for GPUs are refused on a CPU-only machine unless params.yaml asks for them
(memory.check_cpu_bitsandbytes, from the check stage and the train stage alike);
the recorded tokenizer is the one the run used; bitsandbytes' import-time warning stays
out of runs that use no bitsandbytes."""

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from cotdistill.core import memory, quantization
from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.errors import ResourceError
from cotdistill.core.preflight import preflight

from .conftest import REPO, make_params

COST = "bitsandbytes on a CPU is slow (52-60 s per step for llama-3.2-1b 8-bit on 2 CPU cores, measured)"


def refusal(model: str, chosen: str, fix: str) -> str:
    whose, them = ("are the preset's choices", "them") if " and " in chosen else ("is the preset's choice", "it")
    return (
        f"model {model}: {chosen} {whose} for GPUs and this machine has none: {COST}; {fix}, or set {them} "
        f"in params.yaml to keep {them}"
    )


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A local stand-in for the Hub checkpoint (train.model_path), enough for preflight."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(memory, "has_gpu", lambda: False)


def hub_params(model: str, folder: Path, **train):
    return make_params({"model": model, "train": {"model_path": str(folder), "memory_check": False, **train}})


# ------------------------------------------------------------------ bitsandbytes on a CPU

BOTH = "-S train.quantization=none -S train.optimizer=adamw_torch_fused"


@pytest.mark.parametrize(
    "model, chosen, fix",
    [
        ("llama-3.2-1b", "train.quantization=8bit and train.optimizer=paged_adamw_8bit", BOTH),
        ("qwen2.5-1.5b", "train.quantization=4bit and train.optimizer=paged_adamw_8bit", BOTH),
        ("gpt2-large", "train.optimizer=adamw_bnb_8bit", "-S train.optimizer=adamw_torch_fused"),
        ("t5-large", "train.optimizer=adamw_bnb_8bit", "-S train.optimizer=adamw_torch_fused"),
        ("flan-t5-xl", "train.quantization=8bit and train.optimizer=paged_adamw_8bit", BOTH),
        ("t5-xxl", "train.quantization=4bit and train.optimizer=paged_adamw_8bit", BOTH),
    ],
)
def test_a_cpu_only_preflight_refuses_the_preset_s_bitsandbytes_in_one_line(cpu_only, checkpoint, model, chosen, fix):
    with pytest.raises(ResourceError) as exc:
        preflight(hub_params(model, checkpoint))
    assert str(exc.value) == refusal(model, chosen, fix)


def test_the_refusal_is_one_line_with_the_keys_the_cost_and_the_way_out(cpu_only, checkpoint):
    with pytest.raises(ResourceError) as exc:
        preflight(hub_params("llama-3.2-1b", checkpoint))
    assert str(exc.value) == (
        "model llama-3.2-1b: train.quantization=8bit and train.optimizer=paged_adamw_8bit are the preset's choices "
        "for GPUs and this machine has none: bitsandbytes on a CPU is slow (52-60 s per step for llama-3.2-1b 8-bit "
        "on 2 CPU cores, measured); -S train.quantization=none -S train.optimizer=adamw_torch_fused, or set them in "
        "params.yaml to keep them"
    )


def test_only_what_params_yaml_leaves_to_the_preset_is_refused(cpu_only, checkpoint):
    # quantization asked for, the optimizer inherited: only the optimizer is named
    with pytest.raises(ResourceError) as exc:
        preflight(hub_params("llama-3.2-1b", checkpoint, quantization="8bit"))
    assert str(exc.value) == refusal(
        "llama-3.2-1b", "train.optimizer=paged_adamw_8bit", "-S train.optimizer=adamw_torch_fused"
    )
    with pytest.raises(ResourceError, match=r"^model llama-3\.2-1b: train\.quantization=8bit is the preset's choice"):
        preflight(hub_params("llama-3.2-1b", checkpoint, optimizer="adamw_torch_fused"))


@pytest.mark.parametrize(
    "train",
    [
        {"quantization": "8bit", "optimizer": "paged_adamw_8bit"},  # the preset's own values, asked for
        {"quantization": "none", "optimizer": "adamw_torch_fused"},  # the advice taken
        {"quantization": "4bit", "optimizer": "adamw_torch"},
    ],
)
def test_bitsandbytes_asked_for_in_params_yaml_passes_on_a_cpu(cpu_only, checkpoint, train):
    assert preflight(hub_params("llama-3.2-1b", checkpoint, **train)) == []


def test_with_a_gpu_the_preset_s_bitsandbytes_passes(monkeypatch, checkpoint):
    monkeypatch.setattr(memory, "gpu_device_nodes", lambda: True)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for model in ("llama-3.2-1b", "t5-large", "t5-xxl"):
        assert preflight(hub_params(model, checkpoint)) == []


@pytest.mark.parametrize("model", ["t5-tiny", "t5-small", "flan-t5-base", "gpt2", "smollm2-135m", "llama-tiny"])
def test_presets_without_bitsandbytes_pass_on_a_cpu(cpu_only, model):
    preset = STUDENTS.get(model)
    assert memory.check_cpu_bitsandbytes(f"model {model}", preset, make_params({"model": model}).train) is None


def test_the_train_stage_refuses_the_same_way_before_loading_anything(cpu_only, checkpoint, tmp_path, monkeypatch):
    """A train stage run alone (dvc repro train@cot, python stages/train.py) stops with the
    check stage's line, through the same function, before the model loads."""
    from cotdistill.train.students import job as job_module
    from cotdistill.train.students.job import Job, train_student
    from cotdistill.train.students.training import resolve

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(job_module, "ARCHITECTURES", {"t5": SimpleNamespace(load_student=no_loading)})
    params = hub_params("t5-large", checkpoint)
    preset = STUDENTS.get("t5-large")
    job = Job("answer", params, preset, resolve(params.train, preset), rank=0, threads=1)
    with pytest.raises(ResourceError) as exc:
        train_student(job, [], [("q", "a")], [], tmp_path / "checkpoints", tmp_path / "out")
    assert str(exc.value) == refusal(
        "t5-large", "train.optimizer=adamw_bnb_8bit", "-S train.optimizer=adamw_torch_fused"
    )
    assert not (tmp_path / "out").exists()


def test_bitsandbytes_settings_name_what_runs_on_it():
    assert memory.bitsandbytes_settings("none", "adamw_torch_fused") == {}
    assert memory.bitsandbytes_settings(None, "adafactor") == {}
    assert memory.bitsandbytes_settings("4bit", "adamw_torch") == {"quantization": "4bit"}
    assert memory.bitsandbytes_settings("none", "paged_adamw_32bit") == {"optimizer": "paged_adamw_32bit"}


# ------------------------------------------------------------------ the recorded tokenizer


@pytest.mark.parametrize(
    "model, train, recorded",
    [
        ("t5-tiny", {}, "bpe"),  # the committed pipeline's student: what its run.json and run key hold today
        ("t5-tiny", {"tokenizer": "char"}, "char"),
        ("llama-tiny", {}, "bpe"),
        ("t5-small", {}, "checkpoint"),
        ("llama-3.2-1b", {}, "checkpoint"),
        ("smollm2-135m", {}, "checkpoint"),  # a GGUF file brings its tokenizer too
    ],
)
def test_resolve_records_a_trained_tokenizer_s_kind_and_a_checkpoint_s_as_such(model, train, recorded):
    from cotdistill.train.students.training import resolve

    assert resolve(make_params({"model": model, "train": train}).train, STUDENTS.get(model)).tokenizer == recorded


def test_a_loaded_tokenizer_is_described_by_its_class_and_kind():
    from transformers import LlamaTokenizer, T5Tokenizer

    from cotdistill.train.students.causal import causal_tokenizer
    from cotdistill.train.students.tokenizer import describe_tokenizer, train_tokenizer

    texts = ["A coin is heads up. 12 flips."] * 5
    t5 = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581a", -1.0), ("b", -2.0)], extra_ids=3)
    assert describe_tokenizer(t5) == "T5Tokenizer (sentencepiece unigram)"  # the Hub T5 checkpoints'
    llama2 = LlamaTokenizer(vocab={"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581a": 3}, merges=[])
    assert describe_tokenizer(llama2) == "LlamaTokenizer (sentencepiece BPE)"
    assert describe_tokenizer(train_tokenizer(texts, 300)) == "TokenizersBackend (byte-level BPE)"
    assert describe_tokenizer(causal_tokenizer(texts, 300, "char")) == "TokenizersBackend (byte-level BPE)"

    class Slow:  # a tokenizer without a `tokenizers` backend
        pass

    assert describe_tokenizer(Slow()) == "Slow"


# ------------------------------------------------------------------ bitsandbytes' import warning


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )


def test_a_run_without_bitsandbytes_does_not_print_its_import_warning():
    """peft, which transformers' Trainer imports, imports bitsandbytes, whose CPU backend
    warns about a missing optional 4-bit kernel (on CPUs with avx512_bf16, as here); the
    train stage quiets that one logger when its run uses no bitsandbytes, and only it."""
    code = (
        "import logging; logging.basicConfig(level='INFO'); from cotdistill.core import memory, quantization; "
        "quantization.quiet_bitsandbytes(bool(memory.bitsandbytes_settings({q!r}, 'adamw_torch_fused'))); "
        "from transformers import Seq2SeqTrainer; "
        "logging.getLogger('cotdistill.train.students.job').warning('our own warning'); "
        "logging.getLogger('bitsandbytes').warning('bitsandbytes elsewhere')"
    )
    quiet = run_python(code.format(q="none"))
    assert quiet.returncode == 0, quiet.stderr
    assert "gemm_4bit_forward" not in quiet.stderr
    assert "our own warning" in quiet.stderr and "bitsandbytes elsewhere" in quiet.stderr
    loud = run_python(code.format(q="4bit"))  # a run that quantizes keeps it, where this CPU gives it
    assert loud.returncode == 0, loud.stderr
    plain = run_python("from transformers import Seq2SeqTrainer")
    assert ("gemm_4bit_forward" in loud.stderr) == ("gemm_4bit_forward" in plain.stderr)


def test_quieting_touches_that_one_logger_only():
    logger = logging.getLogger(quantization.BNB_IMPORT_LOGGER)
    saved = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        quantization.quiet_bitsandbytes(True)
        assert logger.level == logging.NOTSET
        quantization.quiet_bitsandbytes(False)
        assert logger.level == logging.ERROR
        assert logging.getLogger("bitsandbytes").level == logging.NOTSET
        assert logging.getLogger().level != logging.ERROR
    finally:
        logger.setLevel(saved)
