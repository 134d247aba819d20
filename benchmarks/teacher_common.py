"""Shared set-up of the teacher benchmarks: the offline model as a folder, questions."""

from __future__ import annotations

import random
from pathlib import Path

from cotdistill.core.catalog.teachers import TEACHERS
from cotdistill.core.config import load_params
from cotdistill.core.paths import repo_root
from cotdistill.generate.prompts import load_prompt_file, prompt_path, teacher_prompts
from cotdistill.generate.teachers.hf_local import export_folder
from cotdistill.prepare.datasets.synthetic import coin_flip_example


def model_folder(path: str | None) -> Path:
    """SmolLM2-135M dequantized into a folder (made once, ~20 s)."""
    dest = Path(path) if path else repo_root() / ".cache/teacher/smollm2-135m-hf"
    return export_folder(TEACHERS.get("smollm2-135m"), dest)


def coin_flip_prompts(n: int, shots: int, seed: int = 0) -> tuple[list[str], str]:
    """(answer-conditioned prompts for n questions of 2-4 people, their shared prefix)."""
    rng = random.Random(seed)
    pf = load_prompt_file(prompt_path("coin_flip"))
    rows = [coin_flip_example(rng, rng.randint(2, 4)) for _ in range(n)]
    return teacher_prompts(pf, [{**r, "id": str(i)} for i, r in enumerate(rows)], shots, True)


def generate_config(**overrides):
    """params.yaml's generate section (where every value is set) with `overrides`."""
    import dataclasses

    return dataclasses.replace(load_params(repo_root() / "params.yaml").generate, **overrides)
