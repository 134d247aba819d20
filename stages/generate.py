"""generate: the teacher writes a chain of thought for every train and validation question.

With generate.k_max, verified sampling: each question is sampled in rounds of
generate.num_samples until one CoT passes the filter's checks (its final answer, and its
steps where the dataset has a step checker) or k_max samples are spent; every sample is
written, and the filter then keeps what its settings say.

Requests go through a persistent cache at the repository root, so a rerun, a resumed
run or another experiment with the same teacher settings pays for nothing twice.
"""

import _checkout  # noqa: F401

from cotdistill.core import machine, stage
from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.core.config import load_params, to_dict
from cotdistill.core.io import read_jsonl, write_json, write_jsonl
from cotdistill.core.paths import shared_path
from cotdistill.filter.filtering import verifier
from cotdistill.generate.prompts import STOP_STRINGS, load_prompt_file, resolve_format, teacher_prompts
from cotdistill.generate.teachers import Sampling
from cotdistill.generate.teachers.backends import close_backend, make_backend
from cotdistill.generate.teachers.cache import RequestCache
from cotdistill.generate.teachers.generation import generate_all, generate_verified


def verified_counts(results, first_ok, round_size: int, k_max: int) -> dict:
    """What verified sampling spent and found (an outcome: the same from a warm cache)."""
    drawn = [len(samples) for samples in results]
    found = sum(x is not None for x in first_ok)
    return {
        "k_max": k_max,
        "round_size": round_size,
        "questions": len(results),
        "verified_questions": found,
        "yield": round(found / len(results), 4) if results else 0.0,
        "samples": sum(drawn),
        "samples_per_verified": round(sum(drawn) / found, 2) if found else None,
        # questions by the round their first verified sample came in (budget spent: none)
        "verified_in_round": {
            str(r + 1): sum(1 for x in first_ok if x is not None and x // round_size == r)
            for r in range(-(-k_max // round_size))
        },
    }


def main(argv=None):
    ap = stage.parser(__doc__)
    ap.add_argument("--inputs", nargs="+", required=True, help="prepared split files to generate for")
    ap.add_argument("--prompt", required=True, help="the dataset's prompt file")
    ap.add_argument("--cache", required=True, help="request cache (relative to the repo root)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--timings", help="how the run went: cache hits, what was sent, seconds (not an outcome)")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    cfg = params.generate
    preset = TEACHERS.get(params.teacher)
    prompt_format = resolve_format(params.dataset, cfg.prompt_format)
    prompt_file = load_prompt_file(args.prompt, prompt_format)
    stage.log_config("generate", {"teacher": params.teacher, **to_dict(cfg), "prompt_format": prompt_format})

    records = []
    for path in args.inputs:
        rows = read_jsonl(path)
        if cfg.max_questions is not None:
            rows = rows[: cfg.max_questions]
        records += rows
    prompts, shared_prefix = teacher_prompts(
        prompt_file, records, cfg.shots, cfg.answer_hint, cfg.exemplars, params.seed
    )
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, STOP_STRINGS, params.seed)

    cache = RequestCache(shared_path(args.cache))
    threads = None
    if preset.backend == "hf":  # a local model computes here: keep its threads fixed too
        threads = stage.set_threads(params.threads)
    backend = make_backend(preset, cfg, shared_prefix=shared_prefix)
    first_ok = None
    try:  # a server that keeps failing is an Outage: one line, exit 1 (stage.run)
        if cfg.k_max is None:
            results, stats = generate_all(backend, prompts, sampling, cache, cfg.batch_size, cfg.num_samples)
        else:
            results, stats, first_ok = generate_verified(
                backend,
                prompts,
                sampling,
                cache,
                cfg.batch_size,
                cfg.num_samples,
                cfg.k_max,
                verifier(records, params.dataset, params.filter.extraction, params.filter.verify_equations),
            )
    finally:
        cache.close()
        close_backend(backend)  # a server the backend started (llamacpp) stops here, error or not

    rows = []
    for rec, samples in zip(records, results):
        for s, c in enumerate(samples):
            rows.append(
                {
                    "id": rec["id"],
                    "sample": s,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "teacher": params.teacher,
                    **{f"teacher_{k}": v for k, v in backend.identity.items()},
                }
            )
    write_jsonl(args.out, rows)
    metrics = {"teacher": params.teacher, "prompt_format": prompt_format, "questions": len(records), **stats.outcome()}
    costs = stats.costs()
    if first_ok is not None:
        metrics["verified_sampling"] = verified_counts(results, first_ok, cfg.num_samples, cfg.k_max)
        found = metrics["verified_sampling"]["verified_questions"]
        costs["teacher_s_per_verified"] = round(costs["teacher_s"] / found, 2) if found else None
    if threads is not None:  # the teacher's floats were computed here: what they depend on
        metrics["machine"] = machine.signature(threads)
    write_json(args.metrics, metrics)
    stage.write_timings(args.timings, costs)


if __name__ == "__main__":
    stage.run(main)
