"""The prepare stage's logic: load the chosen dataset, split, subset, decontaminate.

`prepare_dataset` returns the splits, the metrics (counts only, for DVC) and a report
with what the counts are made of (ids of contamination hits, locations of malformed
rows), which the stage writes beside the splits.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from . import DATASETS, SPLITS
from .decontam import decontaminate
from .real import raw_rows
from .records import check_malformed, malformed_summary, map_rows
from .splits import make_splits, subset_train

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    splits: dict[str, list[dict]]
    metrics: dict
    report: dict


def resolve_source(params) -> str:
    """prepare.source, or the dataset's default; an unsupported one names the allowed."""
    spec = DATASETS.get(params.dataset)
    source = params.prepare.source or spec.default_source
    if source not in spec.sources:
        raise ValueError(f"params.yaml: prepare.source: dataset '{spec.name}' has no source "
                         f"'{source}'; allowed: {', '.join(spec.sources)}")
    return source


def load_splits(params, data_files: Optional[dict] = None) -> tuple[dict[str, list[dict]], dict, list, list]:
    """(splits before subsetting and decontamination, load counts, malformed rows, skipped rows)."""
    spec = DATASETS.get(params.dataset)
    source = resolve_source(params)
    cfg = params.prepare
    if source == "synthetic":
        splits = spec.load(params)
        return splits, {"source": source, "rows_loaded": sum(len(v) for v in splits.values())}, [], []
    rows, bad, mapper = raw_rows(spec.name, source, params, data_files)
    pools, bad_mapped, skipped = map_rows(rows, mapper, spec.name)
    bad = bad + bad_mapped
    n_rows = len(rows) + len(bad) - len(bad_mapped)
    for b in bad:
        log.warning("malformed row %s:%d: %s", b.where, b.line, b.reason)
    if skipped:
        log.info("%d rows skipped as outside the answer type %s (listed in report.json)",
                 len(skipped), spec.answer_type)
    check_malformed(bad, n_rows - len(skipped), cfg.max_malformed, spec.name)
    splits = make_splits(pools, cfg.n_train, cfg.n_validation, cfg.n_test, params.seed, spec.name)
    return splits, {"source": source, "rows_loaded": n_rows}, bad, skipped


def prepare_dataset(params, exemplars: list[str], data_files: Optional[dict] = None) -> Prepared:
    """Everything the prepare stage writes, computed in memory (nothing is written here)."""
    spec = DATASETS.get(params.dataset)
    cfg = params.prepare
    splits, load_counts, bad, skipped = load_splits(params, data_files)
    n_before = len(splits["train"])
    splits["train"] = subset_train(splits["train"], cfg.max_train, cfg.data_fraction, params.seed)

    ids = Counter(r["id"] for rows in splits.values() for r in rows)
    dup = sorted(i for i, c in ids.items() if c > 1)
    if dup:
        raise ValueError(f"{spec.name}: {len(dup)} ids occur more than once, e.g. {dup[:5]} "
                         "(set prepare.local.id to a unique column, or null for row numbers)")

    splits, decon, hits = decontaminate(splits, exemplars, spec.ngram_check, cfg.decontaminate)
    for name in ("train", "test"):
        if not splits.get(name):
            raise ValueError(f"{spec.name}: the {name} split is empty after splitting and "
                             "decontamination; lower prepare.n_test or check the source")
    for h in hits:
        log.warning("contamination: test %s matches %s %s (%s)", h.test_id, h.other_split, h.other_id, h.kind)
    test_in_train = len({h.test_id for h in hits if h.other_split == "train"})
    metrics = {
        "dataset": spec.name,
        **load_counts,
        **{f"n_{name}": len(splits.get(name, [])) for name in SPLITS},
        "n_train_before_subset": n_before,
        "test_questions_in_train": test_in_train,
        "decontamination": decon,
        "malformed": {"total": len(bad), **malformed_summary(bad)},
        "skipped_other_answer_type": len(skipped),
    }
    report = {
        "dataset": spec.name,
        "source": load_counts["source"],
        "contamination_hits": [h.as_dict() for h in hits],
        "malformed_rows": [b.as_dict() for b in bad],
        "skipped_rows": [b.as_dict() for b in skipped],
    }
    return Prepared({name: splits.get(name, []) for name in SPLITS}, metrics, report)
