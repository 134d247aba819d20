"""The teacher's levers, measured on the same train questions: which prompt format, budget
and tool make the offline teacher write CoTs that are right step by step. One command
makes the committed table:

    python benchmarks/teacher_levers.py [--questions 200] [--datasets multistep_arith,gsm_symbolic,coin_flip]
        [--k-max 64[,K...]] [--round 16] [--threads 2] [--levers NAME,...] [--out benchmarks/results/teacher_levers.md]

Levers (every one with the answer hint, the paper's prompting, on the questions of the
seed-0 train split): greedy with the dataset's default exemplars; greedy with the `echo` and
`plan` formats (where the prompt file has them); 8 shots instead of 4, and exemplars drawn
per question from the file's pool (generate.exemplars: per_question) with 4 and 8 shots
(where it holds 8 or more); greedy with the calculator in the teacher's decoding (number
answers); verified sampling (generate.k_max: rounds of --round samples at temperature 0.7
until a CoT passes the filter's checks, at most --k-max; a list of budgets gives a lever per
budget, and sample s of a question is the same sample under every budget and round size),
default and echo. Per lever: the answer-correct rate of the samples, the step-correct yield
(questions with a CoT right in every step) and precision (samples right in every step), each
with its 95% Wilson interval; samples and teacher seconds per step-verified question; useful
tokens/s (completion tokens per teacher second). Then the error kinds of up to 50 failed
CoTs per dataset, read from the step checker's verdicts (and, for multistep_arith, a first
equation copied from an exemplar, a last stated value that is not the answer the CoT ends
with). Every request goes through the pipeline's request cache
(.cache/teacher/requests.sqlite): a rerun pays nothing, a larger --k-max only what it adds.
"""
# ruff: noqa: E402  (the float paths are set before torch is imported)

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

from cotdistill.core import machine

machine.apply()  # the pipeline's portable float paths, set before torch is imported (as the stages do)

import torch
import yaml
from teacher_common import model_folder

from cotdistill.core.catalog.datasets import DATASETS
from cotdistill.core.catalog.teachers import TeacherPreset
from cotdistill.core.config import parse_params
from cotdistill.core.io import write_text
from cotdistill.core.paths import repo_root
from cotdistill.filter.filtering import ANSWER_DROPS, classify, cot_text, verifier
from cotdistill.filter.steps import STEP_CHECKERS
from cotdistill.generate.prompts import (
    DEFAULT_FORMAT,
    STOP_STRINGS,
    exemplar_questions,
    format_names,
    load_prompt_file,
    prompt_path,
    teacher_prompts,
)
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.backends import make_backend
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all, generate_verified
from cotdistill.prepare.datasets.prepare import prepare_dataset
from cotdistill.report.stats import mcnemar_exact, rate_text
from cotdistill.text.calculator import find_equations


def params_for(dataset: str, n: int, threads: int):
    """params.yaml with the dataset, a train split of n questions (seed 0) and the thread count."""
    data = yaml.safe_load((repo_root() / "params.yaml").read_text())
    data.update(dataset=dataset, seed=0, threads=threads)
    data["prepare"].update(n_train=n, n_validation=0, n_test=1, n_test_ood=0)
    return parse_params(data, f"params.yaml (+ dataset={dataset})")


def levers(dataset: str, budgets: list[int], round_size: int) -> dict[str, dict]:
    """Lever name -> generate overrides (and the sampling budget), for one dataset."""
    formats = format_names(prompt_path(dataset))
    pool = len(load_prompt_file(prompt_path(dataset)).exemplars)
    others = [f for f in formats if f != DEFAULT_FORMAT]  # the file's other formats (echo, plan, ...)
    out = {"greedy": {}}
    for fmt in others:
        out[f"greedy {fmt}"] = {"prompt_format": fmt}
    if pool >= 8:  # 4 vs 8 shots, fixed or drawn per question from the pool (generate.exemplars)
        out["greedy 8 shots"] = {"shots": 8}
        out["greedy drawn"] = {"exemplars": "per_question"}
        out["greedy drawn 8 shots"] = {"exemplars": "per_question", "shots": 8}
    if DATASETS.get(dataset).answer_type == "number":
        out["greedy +calculator"] = {"calculator": True}
    for k_max in budgets:
        sampled = {"temperature": 0.7, "num_samples": min(round_size, k_max), "k_max": k_max}
        out[f"verified k<={k_max}"] = sampled
        for fmt in others:
            out[f"verified k<={k_max} {fmt}"] = {**sampled, "prompt_format": fmt}
    return out


def run_lever(folder, params, records, settings: dict, cache: RequestCache, batch_size: int) -> dict:
    import dataclasses

    # every lever names its format: "greedy" is the file's top-level exemplars, whatever
    # the dataset's pipeline default (generate.prompt_format: null) is
    settings = {"prompt_format": DEFAULT_FORMAT, **settings}
    cfg = dataclasses.replace(params.generate, **settings, answer_hint=True, batch_size=batch_size)
    pf = load_prompt_file(prompt_path(params.dataset), cfg.prompt_format)
    prompts, shared = teacher_prompts(pf, records, cfg.shots, True, cfg.exemplars, params.seed)
    preset = TeacherPreset(name="smollm2-135m", backend="hf", model=str(folder), params_b=0.135)
    backend = make_backend(preset, cfg, shared_prefix=shared)
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, STOP_STRINGS, params.seed)
    checker = STEP_CHECKERS.get(params.dataset) if params.dataset in STEP_CHECKERS else None
    extraction = params.filter.extraction
    verified = verifier(records, params.dataset, extraction)  # the generate stage's stop rule

    start = time.perf_counter()
    if cfg.k_max is None:
        results, stats = generate_all(backend, prompts, sampling, cache, batch_size, 1, progress=False)
    else:
        results, stats, _ = generate_verified(
            backend, prompts, sampling, cache, batch_size, cfg.num_samples, cfg.k_max, verified, progress=False
        )
    wall = time.perf_counter() - start
    samples = answer_ok = step_ok = 0
    verified_q, failed, per_question = 0, [], []
    for rec, outs in zip(records, results):
        any_ok = False
        for c in outs:
            gen = {"text": c.text, "finish_reason": c.finish_reason}
            reason = classify(gen, rec, extraction)  # the answer filter alone
            why = checker(rec["question"], cot_text(gen)) if checker is not None and reason is None else None
            if why is not None:
                failed.append((rec, cot_text(gen), why))
            ok = reason is None and why is None
            samples += 1
            answer_ok += reason not in ANSWER_DROPS
            step_ok += ok
            any_ok = any_ok or ok
        verified_q += any_ok
        per_question.append(any_ok)
    n = len(records)
    return {
        "questions": n,
        "samples": samples,
        "answer_ok": answer_ok,
        "step_ok": step_ok,
        "verified_q": verified_q,
        "teacher_s": stats.made_seconds,
        "tokens": stats.made_completion_tokens,
        "wall_s": wall,
        "failed": failed,
        "has_checker": checker is not None,
        "per_question": per_question,
    }


def error_kinds(dataset: str, failed: list[tuple[dict, str, str]], limit: int = 50) -> Counter:
    """What went wrong in up to `limit` answer-correct CoTs that fail the step checker."""
    kinds: Counter[str] = Counter()
    firsts: set[str] = set()  # the first equation of every exemplar (any format, any draw)
    if dataset == "multistep_arith":
        pf = load_prompt_file(prompt_path(dataset))
        firsts = {find_equations(ex.rationale)[0].expression.strip() for ex in pf.exemplars}
    for rec, text, why in failed[:limit]:
        if dataset == "multistep_arith":
            if why.startswith("stops after"):
                kinds["skipped or stopped steps"] += 1
            elif " uses " in why:
                kinds["wrong operator"] += 1
            elif "; the question gives" in why:
                kinds["wrong operand"] += 1
            elif "; it is " in why:
                kinds["wrong value (arithmetic)"] += 1
            elif why.startswith("writes"):
                kinds["extra equations"] += 1
            else:
                kinds["other: " + re.sub(r"\d+", "N", why)] += 1
            eqs = find_equations(text)
            if eqs and eqs[0].expression.strip() in firsts:
                kinds["  (also) first equation copied from an exemplar"] += 1
            if eqs and eqs[-1].stated.strip() != rec["answer"]:
                kinds["  (also) hinted answer copied after a chain that ends elsewhere"] += 1
        else:
            kinds[re.sub(r"\b[A-Z][a-z]+\b", "X", re.sub(r"\d+", "N", why))] += 1
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--datasets", default="multistep_arith,gsm_symbolic,coin_flip")
    ap.add_argument("--k-max", default="64", help="verified sampling's budget, or budgets (comma-separated)")
    ap.add_argument("--round", type=int, default=16, help="samples per round of verified sampling")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--levers", default=None, help="comma-separated lever names to run (default: all)")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--out", default="benchmarks/results/teacher_levers.md")
    args = ap.parse_args()
    try:
        budgets = [int(k) for k in args.k_max.split(",")]
    except ValueError:
        ap.error(f"--k-max {args.k_max!r}: allowed is a positive integer or a comma-separated list of them")
    if any(k < 1 for k in budgets):
        ap.error(f"--k-max {args.k_max!r}: every budget must be at least 1")
    datasets = args.datasets.split(",")
    known = {name for d in datasets for name in levers(d, budgets, args.round)}
    wanted = args.levers.split(",") if args.levers else None
    unknown = [name for name in wanted or [] if name not in known]
    if unknown:  # a misspelt lever, or a budget not in --k-max, would leave its row out silently
        ap.error(f"--levers: unknown {', '.join(map(repr, unknown))}; allowed here: {', '.join(sorted(known))}")
    torch.set_num_threads(args.threads)
    folder = model_folder(args.model_dir)
    cache = RequestCache(repo_root() / ".cache/teacher/requests.sqlite")
    sig = machine.describe(machine.signature(args.threads))
    lines = [
        "# The teacher's levers (SmolLM2-135M-Instruct, answer hint)",
        "",
        f"Made by `python benchmarks/teacher_levers.py --questions {args.questions} --datasets {args.datasets} "
        f"--k-max {args.k_max} --round {args.round} --threads {args.threads}"
        + (f" --levers '{args.levers}'" if args.levers else "")
        + f"` on {time.strftime('%Y-%m-%d')}; "
        f"{sig}. The same train questions (seed 0) for every lever of a dataset. Rates in % with 95% "
        "Wilson intervals. Answer-correct: samples whose final answer is right; yield: questions with at "
        "least one CoT right in every step (the dataset's step checker; '-' where it has none); precision: "
        "samples right in every step. Seconds are the teacher's time for the samples when they were made "
        "(cached or not). Paired: each lever against the dataset's first lever on the same questions, "
        "as questions only the first verifies / only this one verifies (verified: a CoT right in every "
        "step; answer-correct where the dataset has no step checker) and the exact McNemar p.",
        "",
        "| dataset | lever | questions | samples | answer-correct | step-correct yield | step-correct precision "
        "| samples per verified question | teacher s per verified question | useful tokens/s | paired |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kinds_lines = []
    for dataset in datasets:
        params = params_for(dataset, args.questions, args.threads)
        records = prepare_dataset(params, exemplar_questions(prompt_path(dataset))).splits["train"]
        failed_all = []
        chosen = levers(dataset, budgets, args.round)
        if wanted:
            chosen = {k: v for k, v in chosen.items() if k in wanted}
        first = None  # (name, per-question verified) of the dataset's first lever
        for name, settings in chosen.items():
            r = run_lever(folder, params, records, settings, cache, args.batch_size)
            if first is None:
                first, paired = (name, r["per_question"]), "-"
            else:
                t = mcnemar_exact(first[1], r["per_question"])
                paired = f"{t['only_a']} / {t['only_b']} against {first[0]}, p {t['p_value']:.2g}"
            failed_all += r["failed"]
            q, s = r["questions"], r["samples"]
            found = r["verified_q"]
            per_s = f"{r['teacher_s'] / found:.1f}" if found else "-"
            per_n = f"{s / found:.1f}" if found else "-"
            tps = f"{r['tokens'] / r['teacher_s']:.1f}" if r["teacher_s"] else "-"
            step = (rate_text(found, q), rate_text(r["step_ok"], s)) if r["has_checker"] else ("-", "-")
            lines.append(
                f"| {dataset} | {name} | {q} | {s} | {rate_text(r['answer_ok'], s)} | {step[0]} | {step[1]} "
                f"| {per_n} | {per_s} | {tps} | {paired} |"
            )
            print(lines[-1], flush=True)
        if failed_all:
            kinds = error_kinds(dataset, failed_all)
            total = min(50, len(failed_all))
            kinds_lines += [
                f"### {dataset}: {total} answer-correct CoTs that fail the step checker",
                "",
                "| error | CoTs |",
                "|---|---|",
            ]
            kinds_lines += [f"| {k.strip()} | {v} |" for k, v in kinds.most_common()] + [""]
    lines += ["", "## What the failed CoTs get wrong", "", *kinds_lines]
    write_text(Path(args.out), "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
