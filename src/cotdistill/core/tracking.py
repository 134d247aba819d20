"""MLflow tracking: one run per (DVC experiment, variant), in a SQLite store at the root.

The store path comes from the real repository root (DVC_ROOT inside queued
experiments), so every experiment of a sweep logs to the same `mlflow.db`.
$MLFLOW_TRACKING_URI, when set, wins (a team server, or a test's own store).
The train stage creates the run and streams its curves; the evaluate stage adds its
metrics to the same run, found by the model's run key (saved beside the model in run.json:
the model folder is an outcome, the same bytes on every rerun, so it holds no run id).

What the MLflow UI reads, set here:
- the experiment's kind (tag mlflow.experimentKind = custom_model_development), so that
  MLflow 3 opens it on its runs rather than on the GenAI traces page;
- MLflow's source tags (mlflow.source.name / type, mlflow.source.git.commit / branch /
  repoURL / dirty, mlflow.project.entryPoint: the DVC stage) for the Source and Version
  columns;
- the data a run saw as dataset inputs (name, context, DVC's md5 as the digest) for the
  Dataset column;
- under `dvc exp run`, a parent run per DVC experiment (named after it) holding one
  child run per variant, so a sweep is grouped; the parent also carries each variant's
  accuracies as <variant>/<metric>, so comparing parents compares experiments.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError
from .paths import git_commit, repo_root

EXPERIMENT = "cotdistill"
CURVE_KEYS = ("loss", "learning_rate", "eval_loss", "grad_norm")
# MLflow 3's experiment kind (read by its UI from this experiment tag; values from the
# UI's own list): a model-training experiment opens on its runs.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "run_role"  # "experiment" (a parent) or "variant" (a student's run)
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MODEL_KEY_TAG = "model_key"  # a student run's key (students.training.run_key): what made its model


def _uninterrupted(fn):
    """Hold Ctrl-C and SIGTERM while `fn` writes to the store, and act on them once it has
    returned: an interrupt in the middle of a write leaves the SQLite store locked by the
    abandoned transaction, and the run could then not be marked KILLED."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)  # signals reach the main thread only
        caught: list[int] = []
        held = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in HELD_SIGNALS}
        try:
            return fn(*args, **kwargs)
        finally:
            for s, handler in held.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
            if caught:
                signal.raise_signal(caught[0])

    return wrapper


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


_READY: set[str] = set()  # stores this process has opened (created and migrated)


def _client():
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if uri in _READY:
        return mlflow, mlflow.MlflowClient()
    with _store_lock(uri):
        try:
            client = mlflow.MlflowClient()  # opens the store (MLflow caches it): creates or migrates it
            client.search_experiments(max_results=1)
        except Exception as exc:
            if not uri.startswith("sqlite:///") or "DatabaseError" not in f"{type(exc).__name__} {exc}":
                raise
            db = uri[len("sqlite:///") :]
            cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
            raise DataError(
                f"{db}: the MLflow store cannot be read ({cause}); move it aside (mv {db} "
                f"{db}.damaged) and rerun: a new store is made, and the runs in the old one are "
                "not in it"
            ) from None
    _READY.add(uri)
    return mlflow, client


@contextlib.contextmanager
def _store_lock(uri: str):
    """Hold a file lock while a SQLite store is opened for the first time. Queued
    experiments start at once on a repository without mlflow.db: each would create the
    tables and run MLflow's schema migrations, and all but one fail ("Online migration
    expected to match one row ... 0 found"). The first to take the lock makes the store;
    the others then find it made."""
    import fcntl

    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + "-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_name() -> str:
    """The DVC experiment being run ('workspace' for a plain `dvc repro`)."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


@_uninterrupted
def start_run(variant: str, params: dict[str, Any], tags: dict[str, str], datasets=()) -> str:
    """Create the run for one student; returns its id (the run stays open for logging).

    `datasets` (DataInput) are logged as its inputs; under `dvc exp run` the run is a
    child of its DVC experiment's parent run."""
    mlflow, client = _client()
    exp_id = experiment_id(mlflow, client)
    all_tags = {
        "git_commit": git_commit(),
        "dvc_experiment": experiment_name(),
        "variant": variant,
        **tags,
        ROLE_TAG: "variant",
        **source_tags(),
    }
    parent = group_run(client, exp_id, {k: v for k, v in params.items() if k != "variant"}, tags)
    if parent:
        all_tags[PARENT_TAG] = parent
    run = client.create_run(exp_id, tags=all_tags, run_name=f"{experiment_name()}/{variant}")
    _log_params(client, run.info.run_id, params)
    log_inputs(run.info.run_id, datasets)
    return run.info.run_id


def _log_params(client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, "null" if v is None else str(v)) for k, v in params.items()]
    for i in range(0, len(items), 90):  # log_batch takes at most 100 params
        client.log_batch(run_id, params=items[i : i + 90])


@_uninterrupted
def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    _, client = _client()
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
    for i in range(0, len(batch), 900):  # log_batch takes at most 1000 metrics
        client.log_batch(run_id, metrics=batch[i : i + 900])


def find_run(model_key: str) -> str | None:
    """The newest run that trained the model of `model_key` in this DVC experiment (or in any,
    when this one has none: a model restored from DVC's run cache was trained by another)."""
    mlflow, client = _client()
    exp = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    if exp is None:
        return None
    query = f"tags.{MODEL_KEY_TAG} = '{model_key}' AND tags.{ROLE_TAG} = 'variant'"  # not its experiment's parent
    for where in (f" AND tags.dvc_experiment = '{experiment_name()}'", ""):
        found = client.search_runs(
            [exp.experiment_id], filter_string=query + where, max_results=1, order_by=["attributes.start_time DESC"]
        )
        if found:
            return found[0].info.run_id
    return None


@_uninterrupted
def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    _, client = _client()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


@_uninterrupted
def end_run(run_id: str, status: str = "FINISHED") -> None:
    _, client = _client()
    client.set_terminated(run_id, status=status)


def loss_callback(run_id: str):
    """A TrainerCallback that logs loss, learning rate, grad norm and eval loss to the run.

    Points are held back until the checkpoint that holds them is complete (on_save), or
    training ends. A run killed between two checkpoints resumes from the last one and
    computes the steps after it again: points logged sooner would then appear twice.
    When a run resumes, what its checkpoint logged and the run lacks (a kill during the
    last flush) is logged then; a point the run already has is never logged again.
    """
    from transformers import TrainerCallback

    class _Curves(TrainerCallback):
        def __init__(self):
            self.pending: list[tuple[str, float, int]] = []
            self.logged: set[tuple[str, int]] = set()
            self.live = False  # after training: log at once (a final evaluation)

        def _add(self, logs: dict, step: int) -> None:
            self.pending += [
                (f"train/{k}", float(v), step)
                for k, v in logs.items()
                if k in CURVE_KEYS and (f"train/{k}", step) not in self.logged
            ]

        def _flush(self) -> None:
            by_step: dict[int, dict[str, float]] = {}
            for key, value, step in self.pending:
                by_step.setdefault(step, {})[key] = value
            for step, values in sorted(by_step.items()):
                log_metrics(run_id, values, step=step)
                self.logged.update((k, step) for k in values)
            self.pending = []

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.logged = _logged_points(run_id, [f"train/{k}" for k in CURVE_KEYS])
                for logs in state.log_history:  # a resumed run's history up to its checkpoint
                    self._add(logs, logs.get("step", 0))
                self._flush()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                self._add(logs, state.global_step)
                if self.live:
                    self._flush()

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self._flush()

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self._flush()
                self.live = True

    return _Curves()


def _logged_points(run_id: str, keys: list[str]) -> set[tuple[str, int]]:
    _, client = _client()
    return {(k, m.step) for k in keys for m in client.get_metric_history(run_id, k)}


@_uninterrupted
def reopen_run(run_id: str) -> bool:
    """Mark an earlier run of a resumed training RUNNING again; False if it is gone."""
    _, client = _client()
    try:
        client.get_run(run_id)
    except Exception:  # deleted run, or another store: the caller starts a fresh run
        return False
    client.update_run(run_id, status="RUNNING")
    claim_run(run_id)
    return True


def system_metrics(run_id: str):
    """Start MLflow's system metrics monitor (CPU, memory, disk, GPU) for a run; the
    caller ends it with `stop_system_metrics`."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=5, resume_logging=True, tracking_uri=tracking_uri())
    monitor.start()
    return monitor


def stop_system_metrics(monitor) -> None:
    """Stop the monitor and log one last sample: a run shorter than the sampling interval
    would otherwise have none (the monitor only publishes at the end of an interval)."""
    monitor.finish()
    try:
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as exc:  # system metrics are best effort: never fail a training for them
        import logging

        logging.getLogger(__name__).warning("final system metrics sample not logged: %s", exc)


@_uninterrupted
def log_folder(run_id: str, folder: str, artifact_path: str = "model") -> None:
    """Copy a folder (the trained model) into the run's artifacts."""
    _, client = _client()
    client.log_artifacts(run_id, folder, artifact_path)


# --------------------------------------------------------------------------- what the UI reads


def experiment_id(mlflow, client) -> str:
    """The experiment's id, created if needed, marked as a model-training experiment
    (unless someone chose another kind for it)."""
    exp = mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    if KIND_TAG not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
    return exp.experiment_id


def ui_url(base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI address that opens the experiment on its runs. MLflow 3.17's UI picks
    GenAI or model-training pages by its own switch (top left, remembered by the browser)
    or the URL's workflowType, not by the experiment kind tag: hence the parameter."""
    mlflow, client = _client()
    exp = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    where = f"experiments/{exp.experiment_id}/runs" if exp else "experiments"
    return f"{base}/#/{where}?workflowType=machine_learning"


def _git(*args: str) -> str | None:
    try:
        # strip newlines only: a porcelain status line starts with a meaningful space
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip("\n")
    except (OSError, subprocess.CalledProcessError):
        return None
    return out


def pipeline_outputs(dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """Path prefixes that `dvc repro` itself writes into the git tree: dvc.lock, params.yaml
    (`dvc exp run -S`) and the outputs dvc.yaml declares (up to a `${...}`)."""
    import yaml

    prefixes = ["dvc.lock", "params.yaml"]
    try:
        stages = (yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8")) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):  # DVC reports a broken dvc.yaml; the tags do without it
        return prefixes
    for spec in stages.values():
        spec = spec.get("do", spec)
        for kind in ("outs", "metrics", "plots"):
            for entry in spec.get(kind) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                prefixes.append(path.split("${")[0])
    return prefixes


def dirty_files() -> list[str] | None:
    """Files of the working tree that differ from its commit (untracked ones too, ignored
    ones not), leaving out what the pipeline writes itself; None outside git."""
    status = _git("status", "--porcelain", "--untracked-files=all")  # each file, not its folder
    if status is None:
        return None
    skip = tuple(pipeline_outputs())
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line.strip()]
    return [p for p in paths if not p.startswith(skip)]


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags: the script, the DVC stage as entry point, the git
    commit, branch, remote and whether the tree had changes that are not in the commit."""
    root = Path.cwd()
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    name = script.relative_to(root).as_posix() if script and script.is_relative_to(root) else str(script or "")
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": name}
    if os.environ.get("DVC_STAGE"):
        tags["mlflow.project.entryPoint"] = os.environ["DVC_STAGE"]
    commit = git_commit()
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":  # HEAD: detached, as in a queued experiment's clone
        tags["mlflow.source.git.branch"] = branch
    url = _git("config", "--get", "remote.origin.url")
    if url:
        tags["mlflow.source.git.repoURL"] = url
    dirty = dirty_files()
    if dirty is not None:
        tags["mlflow.source.git.dirty"] = str(bool(dirty)).lower()
        if dirty:
            tags["git_dirty_files"] = ", ".join(dirty)[:500]
    return tags


def group_run(client, exp_id: str, params: dict[str, Any], tags: dict[str, str]) -> str | None:
    """The parent run of the DVC experiment being run (created by its first variant), or
    None outside `dvc exp run`. Keyed by the experiment's name and baseline commit; a
    container: it is marked FINISHED at once, its children carry the statuses."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        return None
    baseline = os.environ.get("DVC_EXP_BASELINE_REV") or git_commit()
    query = f"tags.dvc_experiment = '{name}' AND tags.dvc_baseline = '{baseline}' AND tags.{ROLE_TAG} = 'experiment'"
    found = client.search_runs([exp_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(
        exp_id,
        run_name=name,
        tags={
            "dvc_experiment": name,
            "dvc_baseline": baseline,
            ROLE_TAG: "experiment",
            "git_commit": git_commit(),
            **tags,
            **source_tags(),
            "mlflow.note.content": f"DVC experiment {name}: one child run per variant (train.variants).",
        },
    )
    _log_params(client, run.info.run_id, params)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def log_to_group(run_id: str, variant: str, metrics: dict[str, float]) -> None:
    """Copy a variant's metrics onto its parent run as <variant>/<metric> (no parent: nothing)."""
    _, client = _client()
    parent = client.get_run(run_id).data.tags.get(PARENT_TAG)
    if parent:
        log_metrics(parent, {f"{variant}/{k}": v for k, v in metrics.items()})


@dataclass(frozen=True)
class DataInput:
    """One file or folder a run read, for MLflow's dataset inputs."""

    name: str  # e.g. coin_flip/cot
    path: str  # as dvc.yaml names it (its DVC md5 is the digest)
    context: str  # train | test | test_ood ...
    profile: dict = field(default_factory=dict)  # e.g. row counts


def log_inputs(run_id: str, datasets) -> None:
    """Log `datasets` as the run's inputs, each with DVC's md5 of its path as the digest
    (the hash in dvc.lock), so that a run names the exact data it saw."""
    if not datasets:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from .io import dvc_md5

    _, client = _client()
    inputs = [
        DatasetInput(
            Dataset(
                name=d.name,
                digest=dvc_md5(d.path),
                source_type="local",
                source=json.dumps({"uri": d.path}),
                profile=json.dumps(d.profile) or None,
            ),
            tags=[InputTag("mlflow.data.context", d.context)],
        )
        for d in datasets
    ]
    client.log_inputs(run_id, datasets=inputs)


# ------------------------------------------------------------------ run lifecycle
# A run is RUNNING while a process trains it. That process is named in the run's
# OWNER_TAG, so that a run whose process died without ending it (kill -9, the OOM
# killer, a lost machine) is found and marked KILLED by the next stage that opens the
# store: MLflow never shows a dead run as running for long.

OWNER_TAG = "cotdistill.process"


def _process_record(pid: int) -> dict:
    import socket

    import psutil

    return {
        "host": socket.gethostname(),
        "boot": round(psutil.boot_time()),
        "pid": pid,
        "started": round(psutil.Process(pid).create_time(), 2),
    }


def claim_run(run_id: str) -> None:
    """Record this process as the one that holds `run_id` open."""
    import json

    set_tags(run_id, {OWNER_TAG: json.dumps(_process_record(os.getpid()), sort_keys=True)})


def owner_alive(owner: dict) -> bool | None:
    """Is the process an owner record names still running? None when it ran on another host."""
    import socket

    import psutil

    if owner.get("host") != socket.gethostname():
        return None
    if abs(owner.get("boot", 0) - psutil.boot_time()) > 2:  # the machine has rebooted since
        return False
    try:
        started = psutil.Process(int(owner["pid"])).create_time()
    except (psutil.NoSuchProcess, KeyError, ValueError):
        return False
    return abs(started - owner.get("started", 0)) < 1  # else: the pid was reused


@_uninterrupted
def close_orphans() -> list[str]:
    """Mark KILLED every RUNNING run whose process (on this host) is gone; returns their ids.

    Runs of other hosts are left alone: their processes cannot be checked from here.
    """
    import json
    import logging

    _, client = _client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    closed = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        raw = run.data.tags.get(OWNER_TAG)
        try:
            owner = json.loads(raw) if raw else None
        except ValueError:
            owner = None
        if owner is None or owner_alive(owner) is not False:
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
        logging.getLogger(__name__).warning(
            "MLflow run %s (%s) was left RUNNING by process %s, which is gone: marked KILLED",
            run.info.run_id,
            run.info.run_name,
            owner.get("pid"),
        )
    return closed
