"""What this machine must have for a params file, checked before any stage runs: the Hub
checkpoints and datasets it names are cached, local or reachable; a local stand-in
(train.model_path, generate.model_path) exists; the student's training fits the memory,
and on a CPU-only machine runs no bitsandbytes setting that its preset chose for GPUs.

`cotdistill check-params` runs it after the params rules (asking the Hub only with
--online); the check stage runs it on every `dvc repro` and `dvc exp run`, so that a
preset that cannot run here stops there, before DVC removes any stage's outputs. The
check stage asks only for what the stages that will run need: a stage whose params are
those dvc.lock recorded keeps its cached outputs (teacher generations made on another
machine need no teacher here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import hub, memory, model_folder
from .catalog.datasets import DATASETS
from .catalog.students import STUDENTS
from .catalog.teachers import TEACHERS
from .errors import ResourceError
from .paths import shared_path


def _lookup(raw: dict, key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError  # a sentinel no value equals
        node = node[part]
    return node


def stages_to_run(raw: dict, dvc_yaml: dict | None, lock: dict | None) -> set[str] | None:
    """The stages among prepare, generate and train@<variant> whose params differ from what
    dvc.lock recorded (or that it lacks); None (all of them) without the two files."""
    if not dvc_yaml or not lock:
        return None
    out = set()
    variants = _lookup(raw, "train.variants")
    names = ["prepare", "generate"] + [f"train@{v}" for v in (variants if isinstance(variants, list) else [])]
    for name in names:
        spec = dvc_yaml.get("stages", {}).get(name.split("@")[0], {})
        keys = (spec.get("do") or spec).get("params") or []
        recorded = ((lock.get("stages") or {}).get(name) or {}).get("params", {}).get("params.yaml")
        if recorded is None or any(isinstance(k, str) and recorded.get(k, KeyError) != _lookup(raw, k) for k in keys):
            out.add(name)
    return out


def preflight(params, online: bool = True, run: set[str] | None = None) -> list[str]:
    """Raise a one-line ResourceError for the first thing this machine lacks for `params`;
    returns notes on what was left unchecked. `run`: the stages that will run (None: all)."""
    notes: list[str] = []

    def runs(stage: str) -> bool:
        return run is None or any(s == stage or s.startswith(stage + "@") for s in run)

    def note(text: str | None) -> None:
        if text:
            notes.append(text)

    if runs("prepare"):
        info = DATASETS.get(params.dataset)
        source = params.prepare.source or info.default_source
        if source == "hub" and info.hub_id:
            note(hub.check(f"dataset {info.name}", info.hub_id, "dataset", online))
        if source == "synthetic":
            synthetic_fits(params.prepare)

    teacher = TEACHERS.get(params.teacher)
    if runs("generate") and teacher.backend == "hf":
        if params.generate.model_path:
            hub.local_folder(f"teacher {teacher.name}", "generate.model_path", shared_path(params.generate.model_path))
        elif not teacher.package and hub.is_hub_id(teacher.model):
            note(hub.check(f"teacher {teacher.name}", teacher.model, "teacher", online))

    student = STUDENTS.get(params.model)
    if runs("train"):
        subject = f"model {student.name}"
        if params.train.model_path:
            hub.local_folder(subject, "train.model_path", shared_path(params.train.model_path))
            note(model_folder.check_folder(subject, student, params.train.model_path))
        elif not student.offline:
            note(hub.check(subject, student.hub_id, "student", online))
        memory.check_cpu_bitsandbytes(subject, student, params.train)
        if not params.train.memory_check:
            pass
        elif params.train.launch.strip() not in ("python", "python3"):
            note(
                f"{subject}: memory check skipped under train.launch '{params.train.launch}' (the launcher's "
                "sharding decides the memory per GPU)"
            )
        else:
            note(memory.check_fits(subject, student, params.train))
    return notes


# What one synthetic row costs the prepare stage, as bounds over what it measured on 2
# cores (peak RSS and bytes written per row, 50k-200k train rows): coin_flip 0.75 KB and
# 0.41 KB, last_letters 0.75 and 0.38, multistep_arith 0.70 and 0.30, gsm_symbolic 1.5-2.9
# and 0.61. A synthetic split is as large as asked; a loaded one is capped by its source.
SYNTHETIC_ROW_MEMORY = 4096
SYNTHETIC_ROW_DISK = 1024


def synthetic_fits(prepare) -> None:
    """Refuse split sizes whose rows cannot be held in this machine's free RAM or written
    to the disk under the working folder (the stage would grow until it was killed)."""
    import shutil

    keys = ("n_train", "n_validation", "n_test", "n_test_ood")
    rows = sum(getattr(prepare, k) for k in keys)
    sizes = f"prepare.{'+'.join(keys)} = {rows:,} rows"
    free_gb = memory.host_free_gb()
    need_gb = rows * SYNTHETIC_ROW_MEMORY / 2**30
    if free_gb is not None and need_gb > free_gb:
        raise ResourceError(
            f"{sizes}: generating them needs about {need_gb:,.1f} GB of RAM "
            f"({SYNTHETIC_ROW_MEMORY // 1024} KB a row) and {free_gb:,.1f} GB is free; "
            f"at most {int(free_gb * 2**30 / SYNTHETIC_ROW_MEMORY):,} rows fit"
        )
    free_disk = shutil.disk_usage(Path.cwd()).free
    if rows * SYNTHETIC_ROW_DISK > free_disk:
        raise ResourceError(
            f"{sizes}: writing them needs about {rows * SYNTHETIC_ROW_DISK / 2**30:,.1f} GB "
            f"({SYNTHETIC_ROW_DISK // 1024} KB a row) and {Path.cwd()} has "
            f"{free_disk / 2**30:,.1f} GB free; at most {free_disk // SYNTHETIC_ROW_DISK:,} rows fit"
        )


def read_pipeline(folder: str | Path) -> tuple[dict | None, dict | None]:
    """dvc.yaml and dvc.lock of the repository at `folder` (None for a file it lacks)."""
    import yaml

    out = []
    for name in ("dvc.yaml", "dvc.lock"):
        path = Path(folder) / name
        out.append(yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None)
    return out[0], out[1]
