"""`hf` backend: a local transformers causal LM, batched with left padding.

Two things make it fast enough to be a teacher:
- batching prompts of similar length, stopped at the stop strings;
- the few-shot prefix shared by every prompt is run through the model once; each
  batch starts from a copy of that KV cache and only computes its questions. The
  batch is laid out as [prefix | left padding | question], so position ids (taken from
  the attention mask) and therefore outputs are those of the unpadded prompt.
Sampling draws each row with its own generator (seeded by the sample's seed and the
prompt), so a sample does not depend on which other prompts share its batch.

Decoding is our own loop rather than `model.generate`: a row leaves the batch (its KV
cache rows are dropped) as soon as it writes a stop string or EOS. On a CPU a step
costs roughly in proportion to the rows it computes, so a batch no longer runs at full
width until its longest row ends; `generate` keeps finished rows as padding. The
outputs are those of `generate` (tests/test_teacher_hf.py), which `decode="generate"`
still runs.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from cotdistill.core import hub, machine
from cotdistill.core.paths import shared_path
from cotdistill.core.quantization import dequantized, quantization_config
from cotdistill.text.calculator_processor import CALCULATOR_FORCING, calculator_processor

from . import Completion, Sampling, cut_at_stop

log = logging.getLogger(__name__)


def resolve_model(preset, model_path: str | None = None) -> tuple[str, dict]:
    """(path or Hub id, extra from_pretrained kwargs) for a teacher preset, or for the local
    folder or .gguf file `model_path` (generate.model_path) that stands in for it.

    A Hub id that is neither cached nor reachable is a one-line ResourceError here, before
    transformers retries; a cached one with the Hub unreachable is read offline."""
    if model_path:
        path = shared_path(model_path)
        hub.local_folder(f"teacher {preset.name}", "generate.model_path", path)
        return (str(path.parent), {"gguf_file": path.name}) if path.suffix == ".gguf" else (str(path), {})
    if preset.package:
        folder = hub.package_folder(preset.package, "teacher weights", preset.gguf_file)
        kwargs = {"gguf_file": preset.gguf_file} if preset.gguf_file else {}
        return str(folder), kwargs
    kwargs = {"gguf_file": preset.gguf_file} if preset.gguf_file else {}
    if hub.is_hub_id(preset.model):
        hub.prepare_load(f"teacher {preset.name}", preset.model, "teacher")
    return preset.model, kwargs


def export_folder(preset, dest: str | Path) -> Path:
    """Write a teacher preset's model as a plain `save_pretrained` folder (fp32).

    A GGUF file is dequantized on load; the folder is what `transformers serve DEST`
    (or vLLM) serves. Idempotent: an existing complete folder is kept.
    """
    dest = Path(dest)
    if (dest / "config.json").exists() and (dest / "model.safetensors").exists():
        return dest
    path, kwargs = resolve_model(preset)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    dequantized(model)  # plain tensors: without the GGUF marks it saves as a plain folder
    from cotdistill.core.io import atomic_dir

    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return dest


def row_seed(seed: int, prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()[:8], "big") >> 1


class RowSampler(LogitsProcessor):
    """Temperature + top-p sampling with one torch.Generator per row (Gumbel-max).

    argmax(logits / T + Gumbel noise) is an exact draw from softmax(logits / T); with
    its own generator per row, a row's draw depends only on its seed, not on the batch.
    Used with greedy decoding, which then takes the argmax.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
            drop = cum - sorted_scores.softmax(dim=-1) > self.top_p  # keep the token that crosses top_p
            scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
        noise = torch.stack(
            [
                -torch.log(-torch.log(torch.rand(scores.shape[-1], generator=g).clamp_(1e-20, 1.0)))
                for g in self.generators
            ]
        ).to(scores.device)
        return scores + noise


class HFBackend:
    concurrency = 1  # batched: the loop hands over whole batches

    def __init__(self, preset, cfg, shared_prefix: str | None = None, decode: str = "loop"):
        if decode not in ("loop", "generate"):
            raise ValueError(f"decode must be loop or generate, got {decode!r}")
        self.decode = decode
        quantization = preset.quantization if cfg.quantization is None else cfg.quantization
        path, kwargs = resolve_model(preset, cfg.model_path)
        cuda = torch.cuda.is_available()
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        qc = quantization_config(quantization)
        self.model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch.bfloat16 if cuda else torch.float32,
            quantization_config=qc,
            # "auto" / "balanced" spread the layers over every visible GPU
            device_map=cfg.device_map or ("auto" if cuda else None),
            **kwargs,
        )
        self.model.eval()
        self.shared_prefix = shared_prefix if cfg.prefix_cache else None
        self._prefix_ids: list[int] | None = None
        self._prefix_kv = None
        self.prefix_hits = 0  # batches that started from the shared prefix's KV cache
        import transformers

        # The engine and its version are part of the cache key: llama.cpp's (or another
        # version's) greedy answers differ slightly, and must not be reused as these.
        self.identity = {
            "backend": "hf",
            "model": preset.model,
            "gguf_file": preset.gguf_file,
            "quantization": None if quantization in (None, "none") else quantization,
            "engine": "transformers",
            "engine_version": f"transformers {transformers.__version__}, torch {torch.__version__}",
            # and what its floats depend on: a greedy answer made with other threads or float
            # code paths (machine.py) can differ, and a warm cache must not make other outcomes
            # than a cold one
            "floats": (
                {"device": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
                if cuda
                else machine.float_key(machine.signature(torch.get_num_threads()))
            ),
        }
        if cfg.model_path:  # a local copy may differ from the preset's weights (only when set: old keys stay)
            self.identity["model_path"] = cfg.model_path
        self.calculator = None
        if cfg.calculator:  # another CoT than the plain teacher's: another cache key (only when set)
            self.identity["calculator"] = CALCULATOR_FORCING
            self.calculator = CALCULATOR_FORCING
        eos = self.model.generation_config.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        self._end_ids = {t for t in (*eos, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}

    # ------------------------------------------------------------------ prefix cache

    def _prefix_for(self, rows: list[list[int]]) -> int:
        """Length of the cached prefix every row starts with (0: no reuse for this batch)."""
        if not self.shared_prefix:
            return 0
        if self._prefix_ids is None:
            # The prompt's own tokenization decides: tokens can merge across the
            # prefix/question boundary, so keep only what the first rows agree on.
            want = self.tokenizer(self.shared_prefix, add_special_tokens=True)["input_ids"]
            n = len(want)
            for r in rows:
                n = min(n, next((j for j, (a, b) in enumerate(zip(want, r)) if a != b), min(len(want), len(r))))
            n = min(n, min(len(r) for r in rows) - 1)  # leave at least one token to run
            if n < 1:
                self.shared_prefix = None
                return 0
            self._prefix_ids = want[:n]
            ids = torch.tensor([self._prefix_ids], device=self.model.device)
            with torch.inference_mode():
                self._prefix_kv = self.model(input_ids=ids, use_cache=True).cache
        n = len(self._prefix_ids)
        if all(len(r) > n and r[:n] == self._prefix_ids for r in rows):
            return n
        return 0

    # ------------------------------------------------------------------ generation

    @torch.inference_mode()
    def complete(self, prompts: list[str], sampling: Sampling) -> list[Completion]:
        rows = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        n_prefix = self._prefix_for(rows)
        pad = self.tokenizer.pad_token_id
        width = max(len(r) for r in rows)
        # [prefix | padding | rest]: with n_prefix == 0 this is plain left padding
        input_ids = [r[:n_prefix] + [pad] * (width - len(r)) + r[n_prefix:] for r in rows]
        mask = [[1] * n_prefix + [0] * (width - len(r)) + [1] * (len(r) - n_prefix) for r in rows]
        seeds = [row_seed(sampling.seed, p) for p in prompts] if sampling.temperature > 0 else None
        cache = None
        if n_prefix:
            cache = copy.deepcopy(self._prefix_kv)
            cache.batch_repeat_interleave(len(rows))
            self.prefix_hits += 1
        # the calculator reads each row's CoT only: an "=" in the prompt (its exemplars) is context
        calc = calculator_processor(self.tokenizer, width, self.calculator) if self.calculator else None
        if self.decode == "loop":
            new_ids = self._decode_loop(input_ids, mask, n_prefix, cache, sampling, seeds, calc)
        else:
            new_ids = self._decode_generate(input_ids, mask, cache, sampling, seeds, calc)
        completions = []
        for ids, prompt_ids in zip(new_ids, rows):
            n = len(ids)
            # everything after the first pad/eos is filler from the batch
            for j, t in enumerate(ids):
                if t in (pad, self.tokenizer.eos_token_id):
                    n = j
                    break
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            text, stopped = cut_at_stop(text, sampling.stop)
            finish = "stop" if stopped or n < len(ids) else "length"
            completions.append(Completion(text.strip(), finish, len(prompt_ids), n))
        return completions

    def _decode_loop(self, input_ids, mask, n_prefix, cache, sampling: Sampling, seeds, calc=None) -> list[list[int]]:
        """Greedy (or per-row sampled) decoding; a row leaves the batch when it is done.
        `calc`: the calculator's logits processor, applied after the sampler (a forced
        token wins whatever the noise), to each row's padded prompt and new tokens.

        Returns the new tokens of every row, ending with the EOS that ended it (if any).
        """
        device = self.model.device
        ids = torch.tensor(input_ids, device=device)
        att = torch.tensor(mask, device=device)
        # positions of the unpadded prompt, as `generate` computes them from the mask
        pos = (att.cumsum(-1) - 1).masked_fill(att == 0, 1)
        sampler = RowSampler(seeds, sampling.temperature, sampling.top_p) if seeds else None
        out: list[list[int]] = [[] for _ in input_ids]
        alive = list(range(len(input_ids)))  # the prompt index of each batch row
        step_ids, step_pos = ids[:, n_prefix:], pos[:, n_prefix:]
        for _ in range(sampling.max_new_tokens):
            res = self.model(
                input_ids=step_ids,
                attention_mask=att,
                position_ids=step_pos,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            cache = res.cache
            scores = res.logits[:, -1, :].float()
            if sampler is not None:
                scores = sampler(None, scores)
            if calc is not None:
                written = torch.tensor([out[i] for i in alive], dtype=torch.long, device=device)
                scores = calc(torch.cat([ids[alive], written.reshape(len(alive), -1)], dim=-1), scores)
            nxt = scores.argmax(-1)
            keep = []
            for b, token in enumerate(nxt.tolist()):
                row = out[alive[b]]
                row.append(token)
                if token in self._end_ids:
                    continue
                if sampling.stop and _has_stop(self.tokenizer, row, sampling.stop):
                    continue
                keep.append(b)
            if not keep:
                break
            if len(keep) < len(alive):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                att, nxt = att[index], nxt[index]
                alive = [alive[b] for b in keep]
                if sampler is not None:
                    sampler.generators = [sampler.generators[b] for b in keep]
            att = torch.cat([att, att.new_ones(len(alive), 1)], dim=-1)
            step_ids = nxt[:, None]
            step_pos = att.sum(-1, keepdim=True) - 1
        return out

    def _decode_generate(self, input_ids, mask, cache, sampling: Sampling, seeds, calc=None) -> list[list[int]]:
        """The same decoding through `model.generate` (finished rows stay in the batch)."""
        device = self.model.device
        pad = self.tokenizer.pad_token_id
        gen_kwargs = dict(
            input_ids=torch.tensor(input_ids, device=device),
            attention_mask=torch.tensor(mask, device=device),
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=pad,
            tokenizer=self.tokenizer,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        if cache is not None:
            gen_kwargs["cache"] = cache
        if sampling.stop:
            gen_kwargs["stop_strings"] = list(sampling.stop)
        processors = [RowSampler(seeds, sampling.temperature, sampling.top_p)] if seeds else []
        if calc is not None:
            processors.append(calc)
        if processors:
            gen_kwargs["logits_processor"] = LogitsProcessorList(processors)
        out = self.model.generate(**gen_kwargs)
        return out[:, len(input_ids[0]) :].tolist()


def _has_stop(tokenizer, ids: list[int], stop: tuple[str, ...]) -> bool:
    # Only the last few tokens can complete a stop string that was not there one step ago.
    tail = tokenizer.decode(ids[-8:], skip_special_tokens=True)
    return any(s in tail for s in stop)
