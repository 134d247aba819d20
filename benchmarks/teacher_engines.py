"""Offline teacher engines side by side: useful tokens/s, keep rate, wall time.

    python benchmarks/teacher_engines.py [--questions N] [--chunks 4] [--engines ...] [--json out.json]

The questions, prompts and sampling are those of the `generate` stage for params.yaml
(default: coin_flip, 256 train + 32 validation, answer-conditioned 4-shot prompts,
greedy, max_new_tokens 96, stop strings). Every engine answers every question. The
questions are cut into chunks and each chunk is run by every engine in turn (the order
rotating per chunk), so a change in the machine's load hits all engines alike.

"Useful" tokens: the completion up to its stop string, counted with the model's own
(Hugging Face) tokenizer for every engine. Keep rate: the repository's filter
(`filter_generations`, the params' extraction mode) on each engine's outputs, with a
95% Wilson interval.

Engines (names for --engines):
- hf-generate   today's `hf` backend: `model.generate`, batch 16, shared-prefix KV;
- hf-loop       the `hf` backend's decoding loop (finished rows leave the batch), batch 16;
- hf-loop-32    the same, batch 32;
- llamacpp-8    llama.cpp (xllamacpp) on the GGUF file, 8 slots, the `llamacpp` backend;
- llamacpp-16   the same, 16 slots;
- llama-cpp-python  `python -m llama_cpp.server` of the interpreter --llama-cpp-python names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from teacher_common import generate_config

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.core.config import load_params
from cotdistill.evaluate.evaluation import wilson_interval
from cotdistill.filter.filtering import filter_generations
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, prompt_path, teacher_prompts
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.backends import close_backend, make_backend
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all
from cotdistill.prepare.datasets.prepare import prepare_dataset

DEFAULT_ENGINES = ("hf-generate", "hf-loop", "hf-loop-32", "llamacpp-8", "llamacpp-16")


@dataclasses.dataclass
class Engine:
    name: str
    backend: object
    batch_size: int
    start_s: float
    texts: dict = dataclasses.field(default_factory=dict)  # prompt index -> completion
    wall_s: float = 0.0
    loads: list = dataclasses.field(default_factory=list)


def default_questions(params_path: str):
    params = load_params(params_path)
    pf = load_prompt_file(prompt_path(params.dataset))
    prepared = prepare_dataset(params, [ex.question for ex in pf.exemplars])
    records = prepared.splits["train"] + prepared.splits["validation"]
    cfg = params.generate
    prompts, shared = teacher_prompts(pf, records, cfg.shots, cfg.answer_hint, cfg.exemplars, params.seed)
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, STOP_STRINGS, params.seed)
    return params, records, prompts, shared, sampling


def make_engines(names, params, prefix, lcp_python: str | None, logdir: Path) -> list[Engine]:
    cfg = params.generate
    engines: list[Engine] = []
    hf = None
    for name in names:
        t = time.perf_counter()
        if name.startswith("hf-"):
            if hf is None:  # one model for every hf variant: they differ in decoding only
                hf = make_backend(TEACHERS.get("smollm2-135m"), cfg, shared_prefix=prefix)
            decode = "generate" if name == "hf-generate" else "loop"
            backend = _HFView(hf, decode)
            batch = 32 if name.endswith("-32") else cfg.batch_size
        elif name.startswith("llamacpp-"):
            slots = int(name.split("-")[1])
            from cotdistill.generate.teachers.llamacpp import LlamaCppBackend

            backend = LlamaCppBackend(
                TEACHERS.get("smollm2-135m-llamacpp"),
                dataclasses.replace(cfg, concurrency=slots),
                log_path=logdir / f"{name}.log",
            )
            batch = 1
        elif name == "llama-cpp-python":
            backend = _llama_cpp_python(lcp_python, logdir / f"{name}.log")
            batch = 1
        else:
            raise SystemExit(f"unknown engine {name!r}; known: {', '.join(DEFAULT_ENGINES)}, llama-cpp-python")
        engines.append(Engine(name, backend, batch, time.perf_counter() - t))
    return engines


class _HFView:
    """One loaded `hf` backend seen with a given decoding (same model, prefix KV, identity)."""

    def __init__(self, hf, decode: str):
        self.hf, self.decode = hf, decode
        self.identity = {**hf.identity, "decode": decode}
        self.concurrency = 1

    def complete(self, prompts, sampling):
        self.hf.decode = self.decode
        return self.hf.complete(prompts, sampling)


def _llama_cpp_python(python: str | None, log_path: Path):
    """llama-cpp-python's own server (compiled on install) behind the openai backend."""
    if not python:
        raise SystemExit("engine llama-cpp-python: pass --llama-cpp-python PYTHON (an interpreter that has it)")
    from cotdistill.generate.teachers.hf_local import resolve_model
    from cotdistill.generate.teachers.local_server import LocalServer, free_port
    from cotdistill.generate.teachers.openai_compat import OpenAIBackend

    preset = TEACHERS.get("smollm2-135m-llamacpp")
    gguf = Path(resolve_model(preset)[0]) / preset.gguf_file
    port = free_port()
    server = LocalServer(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            gguf.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            str(os.cpu_count()),
        ],
        port,
        "/v1/models",
        log_path=log_path,
    )
    # its server answers one request at a time: more in flight only queue
    backend = OpenAIBackend(
        dataclasses.replace(preset, backend="openai"),
        generate_config(base_url=server.base_url, served_model=gguf.name, concurrency=2),
    )
    backend.identity = {"backend": "llama-cpp-python"}
    backend.close = lambda: (OpenAIBackend.close(backend), server.close())
    return backend


def run_chunks(
    engines: list[Engine], prompts: list[str], sampling: Sampling, chunks: int, tmp: Path, after_chunk=None
) -> None:
    order = list(range(len(prompts)))
    size = -(-len(order) // chunks)
    for c in range(chunks):
        part = order[c * size : (c + 1) * size]
        if not part:
            break
        rot = c % len(engines)
        for e in engines[rot:] + engines[:rot]:
            cache = RequestCache(tmp / f"{e.name}.sqlite")  # its own: every request is computed
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            results, _ = generate_all(
                e.backend, [prompts[i] for i in part], sampling, cache, e.batch_size, 1, progress=False
            )
            dt = time.perf_counter() - t
            cache.close()
            e.wall_s += dt
            e.loads.append((load0 + os.getloadavg()[0]) / 2)
            e.texts.update({i: r[0] for i, r in zip(part, results)})
            print(
                f"  chunk {c + 1}/{chunks} {e.name:<17} {len(part)} questions {dt:7.1f} s  load {e.loads[-1]:.1f}",
                flush=True,
            )
        if after_chunk is not None:
            after_chunk(c * size + len(part))


def summarise(engines, records, tokenizer, params) -> list[dict]:
    rows = []
    base = None
    for e in engines:
        comps = [e.texts[i] for i in range(len(records))]  # the questions every engine has answered
        useful = sum(len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in comps)
        gens = [
            {"id": r["id"], "sample": 0, "text": c.text, "finish_reason": c.finish_reason}
            for r, c in zip(records, comps)
        ]
        _, m = filter_generations(records, gens, params.filter.extraction, params.filter.max_per_question)
        lo, hi = wilson_interval(m["kept"], m["generations"])
        tps = useful / e.wall_s
        base = base or {"tps": tps, "texts": [c.text for c in comps]}
        rows.append(
            {
                "engine": e.name,
                "identity": getattr(e.backend, "identity", {}),
                "questions": len(comps),
                "useful_tokens": useful,
                "wall_s": round(e.wall_s, 1),
                "startup_s": round(e.start_s, 1),
                "useful_tokens_per_s": round(tps, 1),
                "ratio_vs_first": round(tps / base["tps"], 2),
                "keep_rate": m["keep_rate"],
                "keep_ci95": [round(lo, 3), round(hi, 3)],
                "kept": m["kept"],
                "dropped_by_reason": {k: v for k, v in m["dropped_by_reason"].items() if v},
                "finish_length": sum(c.finish_reason == "length" for c in comps),
                "same_text_as_first": sum(a == c.text for a, c in zip(base["texts"], comps)),
                "mean_load": round(statistics.mean(e.loads), 1),
            }
        )
    return rows


def print_table(rows) -> None:
    print("\n| engine | useful tok/s | x first | keep rate (95% CI) | wall s | start s | same text | load |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        lo, hi = r["keep_ci95"]
        print(
            f"| {r['engine']} | {r['useful_tokens_per_s']} | {r['ratio_vs_first']:.2f} | "
            f"{r['keep_rate']:.3f} ({lo:.3f}-{hi:.3f}) | {r['wall_s']} | {r['startup_s']} | "
            f"{r['same_text_as_first']}/{r['questions']} | {r['mean_load']} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--questions", type=int, default=None, help="the first N of the default questions (all: 288)")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--engines", nargs="+", default=list(DEFAULT_ENGINES))
    ap.add_argument("--llama-cpp-python", default=None, help="python that has llama-cpp-python[server]")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    params, records, prompts, prefix, sampling = default_questions(args.params)
    if args.questions:
        records, prompts = records[: args.questions], prompts[: args.questions]
    print(
        f"{len(prompts)} questions ({params.dataset}), {params.generate.shots} shots, "
        f"max_new_tokens {sampling.max_new_tokens}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    from transformers import AutoTokenizer

    from cotdistill.generate.teachers.hf_local import resolve_model

    path, kwargs = resolve_model(TEACHERS.get("smollm2-135m"))
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)

    def report(done: int) -> list[dict]:
        # after every chunk: a killed run still leaves the table of what it measured
        rows = summarise(engines, records[:done], tokenizer, params)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"argv": sys.argv[1:], "questions_done": done, "results": rows}, indent=2)
            )
        return rows

    with tempfile.TemporaryDirectory() as tmp:
        engines = make_engines(args.engines, params, prefix, args.llama_cpp_python, Path(tmp))
        try:
            for e in engines:
                print(f"  {e.name:<17} ready in {e.start_s:.1f} s", flush=True)
            run_chunks(engines, prompts, sampling, args.chunks, Path(tmp), after_chunk=report)
        finally:
            for e in engines:
                close_backend(getattr(e.backend, "hf", e.backend))
    print_table(report(len(prompts)))


if __name__ == "__main__":
    main()
