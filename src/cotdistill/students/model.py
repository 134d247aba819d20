"""Build or load a T5-family student and its tokenizer.

- From-config presets (t5-tiny): a T5 built from `T5Config` with a byte-level BPE
  tokenizer trained on the training text with `tokenizers` (nothing downloaded).
- Hub presets: `from_pretrained` on a Hub id or a local folder in the Hub's layout,
  optionally with bitsandbytes 8-bit / 4-bit weights.
- LoRA adapters through peft on top of either, saved as an adapter folder (with the
  from-config base beside it in `base/`) or merged; `load_trained` reads both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from .. import hub
from ..paths import shared_path
from ..errors import DataError
from ..io import read_json
from ..quantization import quantization_config, quiet_bitsandbytes

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def tokenizer_corpus(train_records: list[dict]) -> list[str]:
    """The text a from-config student's tokenizer is trained on: the train split's
    questions, answers and gold rationales. Never the teacher's output, so that every
    variant of one dataset and seed shares one tokenizer, and the answer-only baseline
    does not move when only the teacher, the hint or the filter changes."""
    texts = [r["question"] for r in train_records] + [str(r["answer"]) for r in train_records]
    return texts + [r["gold_rationale"] for r in train_records if r.get("gold_rationale")]


def train_tokenizer(texts: Iterable[str], vocab_size: int, kind: str = "bpe") -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with T5's special tokens (pad=0, eos=1, unk=2), eos appended.

    `bpe`: merges learned from `texts`, but every digit stays its own token (the first
    one may carry the space before it: " 12" is " 1", "2"), so that numbers are read and
    written digit by digit (a student can learn arithmetic per digit instead of one
    token per number). `char`: no merges at all, one token per byte, so that a student
    sees the letters inside words (last-letter tasks).
    Any text can be encoded either way (bytes are the fallback).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if kind not in ("bpe", "char"):
        raise ValueError(f"tokenizer kind must be 'bpe' or 'char', got {kind!r}")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size if kind == "bpe" else len(alphabet) + 3,  # char: the alphabet, no merges
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=1024
    )


def describe_tokenizer(tokenizer) -> str:
    """A loaded tokenizer's class and kind, as a run records it: 'T5Tokenizer (sentencepiece
    unigram)', 'TokenizersBackend (byte-level BPE)'; the class alone for a tokenizer without
    a `tokenizers` backend. The kind is the backend's model (BPE, Unigram, WordPiece,
    WordLevel) with how it reads text: bytes (byte-level) or SentencePiece's "▁" spaces and
    byte fallback (sentencepiece)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return type(tokenizer).__name__
    parts = set()
    for part in (backend.pre_tokenizer, backend.decoder):
        if part is not None:
            _types(json.loads(part.__getstate__()), parts)
    model = type(backend.model).__name__
    if "ByteLevel" in parts:
        reads = "byte-level "
    elif "Metaspace" in parts or getattr(backend.model, "byte_fallback", False):
        reads = "sentencepiece "
    else:
        reads = ""
    return f"{type(tokenizer).__name__} ({reads}{model if model in ('BPE', 'WordPiece') else model.lower()})"


def _types(node, out: set) -> None:
    """Every "type" in a serialized pre-tokenizer or decoder (a Sequence nests others)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            out.add(node["type"])
        for value in node.values():
            _types(value, out)
    elif isinstance(node, list):
        for value in node:
            _types(value, out)


def build_from_config(preset, tokenizer: PreTrainedTokenizerFast, seed: int) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **preset.config,
    )
    return T5ForConditionalGeneration(config)


def load_pretrained(path: str, quantization: str | None = None, dtype: torch.dtype | None = None):
    """(model, tokenizer) from a Hub id or a local folder in the Hub's layout."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    qc = quantization_config(quantization)
    model = T5ForConditionalGeneration.from_pretrained(
        path,
        dtype=dtype or torch.float32,
        quantization_config=qc,
        device_map=quantized_device_map() if qc is not None else None,
    )
    return model, tokenizer


def quantized_device_map():
    """Where bitsandbytes puts quantized weights: this process's GPU under DDP (each rank
    holds a full replica), else spread over the visible GPUs; None on CPU."""
    import os

    if not torch.cuda.is_available():
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return "auto"


BASE_DIR = "base"  # inside an adapter folder: the from-config base model it adapts
LORA_TARGETS = ["q", "v"]  # T5's attention query and value projections


def load_student(preset, texts: Iterable[str], seed: int, quantization: str = "none",
                 dtype: torch.dtype | None = None, base_dir: Path | None = None, tokenizer: str | None = None,
                 model_path: str | None = None):
    """(model, tokenizer) for a student preset; `texts` train the tokenizer if needed.

    A Hub student loads from `model_path` (train.model_path: a local folder) when given,
    else from its Hub id: the local cache, or the Hub; neither is a one-line ResourceError.

    bitsandbytes quantizes while loading, so a from-config student that is to be
    quantized (or to carry adapters) is first saved to `base_dir` and loaded from there;
    that folder is also the base an adapter folder points to. `tokenizer` (bpe | char)
    overrides the preset's tokenizer kind of a from-config student.
    """
    quantization = quantization or "none"
    if preset.offline:
        def build():
            tok = train_tokenizer(texts, preset.tokenizer_vocab_size, tokenizer or preset.tokenizer)
            return build_from_config(preset, tok, seed), tok

        return through_base_dir(build, base_dir, quantization, lambda folder: load_pretrained(folder, quantization,
                                                                                             dtype))
    if model_path:
        return load_pretrained(str(shared_path(model_path)), quantization, dtype)
    hub.prepare_load(f"model {preset.name}", preset.hub_id, "student")
    return load_pretrained(preset.hub_id, quantization, dtype)


def through_base_dir(build: Callable[[], tuple], base_dir: Path | None, quantization: str,
                     load: Callable[[str], tuple]) -> tuple:
    """(model, tokenizer) of a student built here (from a config, or from a GGUF file) as
    training takes it. bitsandbytes quantizes while loading, so one that is to be quantized,
    or to carry adapters, is first saved to `base_dir` (that folder is also the base the
    adapter folder keeps), and a quantized one is loaded back from there by `load`, after
    the built one is let go (it would double the peak memory)."""
    model, tokenizer = build()
    if base_dir is None:
        if quantization != "none":
            raise ValueError("a quantized student built here needs a base_dir to load from")
        return model, tokenizer
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    if quantization == "none":
        return model, tokenizer
    del model
    return load(str(base_dir))


def apply_lora(model, r: int, alpha: int, dropout: float, gradient_checkpointing: bool,
               targets: list[str] | None = LORA_TARGETS, task_type: str = "SEQ_2_SEQ_LM"):
    """Wrap `model` with trainable LoRA adapters (peft); base weights stay frozen.
    `targets` None: peft's default modules for the model's architecture."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_8bit", False) or getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        # Checkpointed blocks need an input that requires grad when the embeddings are frozen.
        model.enable_input_require_grads()
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        task_type=task_type)
    return get_peft_model(model, config)


def save_trained(model, tokenizer, folder: Path, lora_save: str, base: str | None,
                 dtype: torch.dtype | None = None, model_class=T5ForConditionalGeneration) -> str:
    """Write the trained student to `folder`; returns "full", "adapter" or "merged".

    `base` is the base model's folder or Hub id (for LoRA). A quantized base cannot take
    merged weights, so "merged" reloads the base unquantized and merges into that.
    """
    folder = Path(folder)
    is_peft = hasattr(model, "peft_config")
    if not is_peft:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return "full"
    if lora_save == "adapter":
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if base and Path(base).is_dir():
            import shutil

            shutil.copytree(base, folder / BASE_DIR)
        return "adapter"
    quantized = any(getattr(model.base_model.model, f"is_loaded_in_{b}", False) for b in ("8bit", "4bit"))
    if quantized:
        import tempfile

        from peft import PeftModel

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            full = model_class.from_pretrained(base, dtype=dtype or torch.float32)
            merged = PeftModel.from_pretrained(full, tmp).merge_and_unload()
    else:
        merged = model.merge_and_unload()
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return "merged"


def check_model_folder(folder: str | Path) -> None:
    """Fail with one line naming the file when `folder` (and its `base/`) is not a whole
    saved student: a missing folder or weights file, a JSON file that does not parse, a
    safetensors file that is truncated or not one. transformers would raise a traceback."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    hint = "rerun its train stage, or `dvc checkout` it"
    if not folder.is_dir():
        raise DataError(f"{folder}: no model folder here ({hint})")
    for sub in (folder, folder / BASE_DIR):
        if not sub.is_dir():
            continue
        for path in sorted(sub.glob("*.json")):
            read_json(path)  # a DataError naming the file and line
        weights = sorted(sub.glob("*.safetensors"))
        if not weights and not (sub / "pytorch_model.bin").exists():
            raise DataError(f"{sub}: no weights file (*.safetensors) in the model folder ({hint})")
        for path in weights:
            try:
                with safe_open(str(path), "pt") as fh:
                    fh.keys()
            except SafetensorError as exc:
                raise DataError(f"{path}: not a readable safetensors file ({exc}); {hint}") from None
    if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
        raise DataError(f"{folder}: no config.json or adapter_config.json ({hint})")


def load_trained(folder: str | Path, model_class=T5ForConditionalGeneration):
    """The trained student in `folder`, ready for generation on the best device.

    A full (or merged) model loads directly; an adapter folder loads its base (the
    `base/` folder beside it, else the Hub id peft recorded) with the quantization it
    was trained on (from run.json), then the adapters on top.
    """
    folder = Path(folder)
    cuda = torch.cuda.is_available()
    adapter_cfg = folder / "adapter_config.json"
    if not adapter_cfg.exists():
        model = model_class.from_pretrained(folder)
        return model.to("cuda") if cuda else model
    run_file = folder / "run.json"
    resolved = json.loads(run_file.read_text())["resolved_train"] if run_file.exists() else {}
    qc = quantization_config(resolved.get("quantization"))
    quiet_bitsandbytes(qc is not None)  # peft imports bitsandbytes
    from peft import PeftModel

    base = folder / BASE_DIR
    base_id = str(base) if base.is_dir() else json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
    if hub.is_hub_id(base_id):
        hub.prepare_load(f"{folder}: base model", base_id, "student")
    model = model_class.from_pretrained(
        base_id,
        dtype=torch.bfloat16 if (cuda and resolved.get("precision") == "bf16") else torch.float32,
        quantization_config=qc,
        device_map=quantized_device_map() if qc is not None else None,
    )
    if cuda and qc is None:
        model.to("cuda")
    return PeftModel.from_pretrained(model, str(folder))
