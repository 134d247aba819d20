"""gsm_symbolic: GSM8K-style word problems from the templates of PyPI `reasoning-gym`.

reasoning-gym 0.1.25 instantiates GSM-Symbolic templates (Mirzadeh et al., 2024) with
random names and numbers, with the answer and a worked solution, so an arithmetic dataset
with gold rationales runs fully offline. Each split is drawn from its own seeded stream;
questions already drawn for an earlier split are skipped, so the splits are disjoint.
"""

from __future__ import annotations

from . import DatasetSpec, register
from ..answers import parse_gold
from .records import gsm_rationale

# reasoning-gym appends an instruction meant for chat models; the record holds the problem.
_SUFFIX = " Give the result as your final answer. Do not include units."


def _generate(seed: str, size: int) -> list[dict]:
    import zlib

    from reasoning_gym import create_dataset

    ds = create_dataset("gsm_symbolic", size=size, seed=zlib.crc32(seed.encode()))
    return [ds[i] for i in range(size)]


def load_gsm_symbolic(params) -> dict[str, list[dict]]:
    cfg = params.prepare
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split, n, prefix in (("test", cfg.n_test, "gsmsym-test"),
                             ("validation", cfg.n_validation, "gsmsym-val"),
                             ("train", cfg.n_train, "gsmsym-train")):
        rows: list[dict] = []
        # a few duplicates per thousand: draw a margin, and a bigger one if it was not enough
        size = n + n // 10 + 10
        for attempt in range(4):
            rows, taken = [], set()
            for item in _generate(f"gsm_symbolic-{params.seed}-{split}-{attempt}", size):
                question = item["question"].removesuffix(_SUFFIX).strip()
                if question in seen or question in taken:
                    continue
                answer = parse_gold(item["answer"], "number")
                if answer is None:
                    raise ValueError(f"gsm_symbolic: reasoning-gym gave an unreadable answer {item['answer']!r}")
                taken.add(question)
                rows.append({"id": f"{prefix}-{len(rows):05d}", "question": question, "answer": answer,
                             "answer_type": "number",
                             "gold_rationale": gsm_rationale(item["metadata"]["answer_cot"], answer)})
                if len(rows) == n:
                    break
            if len(rows) == n:
                break
            size *= 4
        else:
            raise ValueError(f"gsm_symbolic: cannot draw {n} distinct {split} questions")
        seen |= taken
        out[split] = rows
    out["test_ood"] = []
    return out


register(
    DatasetSpec(
        name="gsm_symbolic",
        answer_type="number",
        load=load_gsm_symbolic,
        offline=True,
        description="GSM8K-style problems from templates (PyPI reasoning-gym==0.1.25)",
        splits="generated: train, validation, test",
        ngram_check=False,
        source_notes={"synthetic": "reasoning_gym.create_dataset('gsm_symbolic'), seeded"},
    )
)
