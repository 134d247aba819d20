"""The memory check reads train.model_path's folder (issue 23): its estimate follows the
folder's model (config.json's dims, the safetensors header's exact parameter count) under
the preset's train settings and the run's sequence lengths; a folder of the other family than the preset's is one line;
a folder far from the preset's size gets a note. Tiny random-weight folders, seconds."""

import dataclasses
import json
import struct
from pathlib import Path

import pytest

from cotdistill.core import memory, model_folder
from cotdistill.core.catalog.students import STUDENTS
from cotdistill.core.errors import ConfigError
from cotdistill.core.preflight import preflight

from .conftest import make_params

SMALL_GPU = memory.Device("GPU 0 (test card)", 4.0, cuda=True, bf16=True)
# a CPU-only machine: bitsandbytes settings a preset chose for GPUs are refused unless set
NO_BNB = {"quantization": "none", "optimizer": "adamw_torch_fused"}


def t5_config(**kw):
    from transformers import T5Config

    return T5Config(
        **{
            **dict(
                d_model=32,
                d_kv=8,
                d_ff=48,
                num_layers=2,
                num_decoder_layers=3,
                num_heads=4,
                vocab_size=120,
                feed_forward_proj="gated-gelu",
                tie_word_embeddings=False,
            ),
            **kw,
        }
    )


def llama_config(**kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        **{
            **dict(
                hidden_size=32,
                intermediate_size=80,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                vocab_size=150,
                tie_word_embeddings=False,
            ),
            **kw,
        }
    )


def gpt2_config(**kw):
    from transformers import GPT2Config

    return GPT2Config(**{**dict(n_embd=32, n_layer=2, n_head=4, vocab_size=130, n_positions=64), **kw})


def save(folder: Path, config, **save_kw) -> int:
    """A random-weight model of `config` saved as save_pretrained does; its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, T5ForConditionalGeneration

    torch.manual_seed(0)
    cls = T5ForConditionalGeneration if config.model_type == "t5" else AutoModelForCausalLM
    model = cls._from_config(config) if hasattr(cls, "_from_config") else cls.from_config(config)
    model.save_pretrained(folder, **save_kw)
    return model.num_parameters()


@pytest.fixture
def t5_folder(tmp_path) -> tuple[Path, int]:
    folder = tmp_path / "t5"
    return folder, save(folder, t5_config())


@pytest.fixture
def llama_folder(tmp_path) -> tuple[Path, int]:
    folder = tmp_path / "llama"
    return folder, save(folder, llama_config())


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(memory, "has_gpu", lambda: False)


# ------------------------------------------------------------------ reading the folder


def test_the_folder_is_read_from_its_config_and_safetensors_header(t5_folder, llama_folder):
    folder, n = t5_folder
    f = model_folder.read_folder(folder)
    assert (f.model_type, f.architecture, f.exact, f.dtype) == ("t5", "t5", True, "fp32")
    assert f.params_m == n / 1e6
    assert f.shape == {"d_model": 32, "num_layers": 3, "num_heads": 4, "vocab_size": 120}  # layers: mean of 2 + 3
    folder, n = llama_folder
    f = model_folder.read_folder(folder)
    assert (f.model_type, f.architecture, f.exact, f.params_m) == ("llama", "causal", True, n / 1e6)
    assert f.shape == {"d_model": 32, "num_layers": 2, "num_heads": 4, "vocab_size": 150}


def test_the_header_is_json_after_its_length_and_no_weight_is_read(t5_folder):
    folder, n = t5_folder
    raw = (folder / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert model_folder.safetensors_header(folder / "model.safetensors") == json.loads(raw[8 : 8 + length])


@pytest.mark.parametrize(
    "config",
    [
        t5_config,
        lambda: t5_config(feed_forward_proj="relu", tie_word_embeddings=True, num_decoder_layers=None),
        llama_config,
        lambda: llama_config(tie_word_embeddings=True, num_key_value_heads=4),
        gpt2_config,
    ],
    ids=["t5-v1.1", "t5-v1.0", "llama", "llama-tied", "gpt2"],
)
def test_without_safetensors_the_count_is_computed_from_the_config(tmp_path, config):
    folder = tmp_path / "m"
    n = save(folder, config())
    (folder / "model.safetensors").unlink()
    f = model_folder.read_folder(folder)
    assert not f.exact and f.params_m == pytest.approx(n / 1e6, rel=1e-9)


def test_a_sharded_folder_is_counted_over_its_index(tmp_path):
    folder = tmp_path / "sharded"
    n = save(folder, llama_config(), max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file() and not (folder / "model.safetensors").exists()
    f = model_folder.read_folder(folder)
    assert f.exact and f.params_m == n / 1e6


def test_the_stored_precision_comes_from_the_header_or_the_config(tmp_path):
    import torch
    from transformers import LlamaForCausalLM

    folder = tmp_path / "bf16"
    model = LlamaForCausalLM(llama_config()).to(torch.bfloat16)
    model.save_pretrained(folder)
    f = model_folder.read_folder(folder)
    assert f.dtype == "bf16" and f.exact and f.params_m == model.num_parameters() / 1e6  # the header's tensors
    (folder / "model.safetensors").unlink()
    config = json.loads((folder / "config.json").read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(config))
    assert model_folder.read_folder(folder).dtype == "fp16"  # no weights: config.json's dtype


def test_a_folder_without_a_readable_config_is_left_to_the_stage(tmp_path):
    assert model_folder.read_folder(tmp_path) is None
    (tmp_path / "config.json").write_text("{}")
    f = model_folder.read_folder(tmp_path)
    assert f.architecture is None and f.params_m is None
    assert model_folder.folder_preset(STUDENTS.get("t5-xl"), str(tmp_path)) is STUDENTS.get("t5-xl")


# ------------------------------------------------------------------ the estimate follows the folder


def test_a_tiny_folder_under_a_huge_preset_estimates_small(t5_folder):
    folder, n = t5_folder
    xxl = STUDENTS.get("t5-xxl")
    params = make_params({"model": "t5-xxl", "train": {"model_path": str(folder), **NO_BNB}})
    shaped = model_folder.folder_preset(xxl, params.train.model_path)
    assert shaped.params_m == n / 1e6 and (shaped.d_model, shaped.num_layers, shaped.vocab_size) == (32, 3, 120)
    # the preset's train settings stay: batch 8, LoRA, checkpointing
    assert (shaped.batch_size, shaped.lora, shaped.gradient_checkpointing) == (8, True, True)
    s = memory.settings(params.train, xxl, SMALL_GPU)
    assert memory.estimate_gb(shaped, s, 16) < 0.1 < 4.0 < memory.estimate_gb(xxl, s, 16)
    assert memory.check_fits("model t5-xxl", xxl, params.train, SMALL_GPU) is None
    # the same folder's estimate is the same formula as a preset of its size and dims
    same = dataclasses.replace(xxl, params_m=n / 1e6, d_model=32, num_layers=3, num_heads=4, vocab_size=120)
    assert memory.estimate_gb(shaped, s, 16) == memory.estimate_gb(same, s, 16)


def test_a_folder_too_large_for_the_machine_is_refused_with_its_own_size(tmp_path):
    folder = tmp_path / "big"
    n = save(folder, t5_config(d_model=64, d_kv=16, num_layers=2, num_decoder_layers=2, vocab_size=50_000))
    params = make_params({"model": "t5-small", "train": {"model_path": str(folder), "batch_size": 64}})
    tiny = memory.Device("host RAM (no GPU)", 0.5, cuda=False, bf16=False)
    with pytest.raises(memory.ResourceError) as exc:
        memory.check_fits("model t5-small", STUDENTS.get("t5-small"), params.train, tiny)
    assert str(exc.value).startswith("model t5-small: training needs about ")
    assert f"({n / 1e6:,.1f}M parameters at train.model_path; fp32, batch 64, full finetuning; an upper bound)" in str(
        exc.value
    )


def test_without_a_folder_the_preset_is_estimated_as_before():
    for name in ("t5-base", "t5-xxl", "llama-3.2-1b"):
        assert model_folder.folder_preset(STUDENTS.get(name), None) is STUDENTS.get(name)
    # bf16, batch 64: 25.6 before issue 23's decoder cross-attention, logits bytes and the
    # backpropagated layer's gradients (each measured missing by benchmarks/memory_estimate.py)
    assert memory.defaults_gb(STUDENTS.get("t5-base")) == 32.51


def test_the_estimate_follows_the_run_s_sequence_lengths(t5_folder):
    """A folder's estimate, as a preset's, is made at the run's train.max_source_length /
    max_target_length (issue 23: at 256 + 256 whatever the run's, a 48M folder estimated
    22.5 GB for a run that took 6.1), and the check fits a run of short rows that long
    rows would not."""
    folder, _ = t5_folder
    small = STUDENTS.get("t5-small")
    cpu = memory.Device("host RAM (no GPU)", 0.0, cuda=False, bf16=False)

    def train(**lengths):
        return make_params({"model": "t5-small", "train": {"model_path": str(folder), **lengths}}).train

    short, long = train(max_source_length=64, max_target_length=32), train(max_source_length=512)
    for model in (model_folder.folder_preset(small, str(folder)), small):
        gb = [memory.estimate_gb(model, memory.settings(t, small, cpu), 16) for t in (short, train(), long)]
        assert gb == sorted(gb) and len(set(gb)) == 3
    s = memory.settings(short, small, cpu)
    room = dataclasses.replace(cpu, free_gb=memory.estimate_gb(model_folder.folder_preset(small, str(folder)), s, 16))
    assert memory.check_fits("model t5-small", small, short, room) is None
    with pytest.raises(memory.ResourceError, match="training needs about"):
        memory.check_fits("model t5-small", small, train(), room)


# ------------------------------------------------------------------ family and size at the check stage


def test_a_t5_folder_under_a_causal_preset_is_one_line(cpu_only, t5_folder):
    folder, _ = t5_folder
    params = make_params({"model": "llama-3.2-1b", "train": {"model_path": str(folder), **NO_BNB}})
    with pytest.raises(ConfigError) as exc:
        preflight(params)
    assert str(exc.value) == (
        f"model llama-3.2-1b: train.model_path: {folder} holds a t5 model, of the t5 (encoder-decoder) family, and "
        "model llama-3.2-1b is a causal (decoder-only) preset; set model to a preset of the folder's family "
        "(t5-small, flan-t5-small, t5-base, flan-t5-base, t5-large, flan-t5-large, t5-xl, flan-t5-xl, t5-xxl, "
        "flan-t5-xxl)"
    )


def test_a_causal_folder_under_a_t5_preset_is_one_line(cpu_only, llama_folder):
    folder, _ = llama_folder
    params = make_params({"model": "t5-xl", "train": {"model_path": str(folder), "memory_check": False, **NO_BNB}})
    with pytest.raises(
        ConfigError,
        match=r"^model t5-xl: train\.model_path: .* holds a llama model, of the causal "
        r"\(decoder-only\) family, and model t5-xl is a t5 \(encoder-decoder\) "
        r"preset; set model to a preset of the folder's family \(smollm2-360m, ",
    ):
        preflight(params)


def test_a_folder_far_from_the_preset_s_size_gets_a_note(cpu_only, t5_folder, llama_folder):
    folder, n = t5_folder
    notes = preflight(make_params({"model": "t5-xxl", "train": {"model_path": str(folder), **NO_BNB}}))
    assert notes == [
        f"model t5-xxl: train.model_path: {folder} holds {n / 1e6:,.1f}M parameters and model t5-xxl 11,100M: its "
        "batch size 8, LoRA on 4bit weights and paged_adamw_8bit were chosen for its own size; set train.batch_size, "
        "train.lora, train.quantization, train.optimizer for the folder's"
    ]
    folder, _ = llama_folder
    assert (
        "were chosen for its own size"
        in preflight(make_params({"model": "gpt2", "train": {"model_path": str(folder), **NO_BNB}}))[0]
    )


def test_a_folder_of_the_preset_s_size_gets_no_note(tmp_path):
    xl = STUDENTS.get("t5-xl")
    folder = tmp_path / "m"
    save(folder, t5_config())
    near = dataclasses.replace(xl, params_m=model_folder.read_folder(folder).params_m * 3.9)
    assert model_folder.check_folder("model x", near, folder) is None
    far = dataclasses.replace(xl, params_m=model_folder.read_folder(folder).params_m * 4.1)
    assert model_folder.check_folder("model x", far, folder) is not None


def test_on_host_ram_the_training_process_s_own_memory_counts(t5_folder):
    """The check stage measures free RAM before the train stage's process exists: what that
    process holds besides its model (its imports) is added, and said."""
    folder, n = t5_folder
    params = make_params({"model": "t5-small", "train": {"model_path": str(folder)}})
    small = STUDENTS.get("t5-small")
    model_gb = memory.estimate_gb(
        model_folder.folder_preset(small, str(folder)),
        memory.settings(params.train, small, memory.Device("x", 1, False, False)),
        16,
    )
    room = memory.Device("host RAM (no GPU)", model_gb + 0.5, cuda=False, bf16=False)
    assert memory.check_fits("model t5-small", small, params.train, room) is None
    with pytest.raises(
        memory.ResourceError,
        match=rf"needs about {model_gb + 0.57:.1f} GB \(.*, 0\.6 GB of it the "
        r"training process's own; an upper bound\)",
    ):
        memory.check_fits("model t5-small", small, params.train, dataclasses.replace(room, process_gb=0.57))
