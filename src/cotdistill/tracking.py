"""MLflow tracking: one run per (DVC experiment, variant), in a SQLite store at the root.

The store path comes from the real repository root (DVC_ROOT inside queued
experiments), so every experiment of a sweep logs to the same `mlflow.db`.
$MLFLOW_TRACKING_URI, when set, wins (a team server, or a test's own store).
The train stage creates the run and streams its curves; the evaluate stage adds its
metrics to the same run, found through the run id saved beside the model.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from typing import Any

from .paths import git_commit, repo_root

EXPERIMENT = "cotdistill"
CURVE_KEYS = ("loss", "learning_rate", "eval_loss", "grad_norm")
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def _client():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow, mlflow.MlflowClient()


def experiment_name() -> str:
    """The DVC experiment being run ('workspace' for a plain `dvc repro`)."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


@_uninterrupted
def start_run(variant: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create the run for one student; returns its id (the run stays open for logging)."""
    mlflow, client = _client()
    exp = mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    all_tags = {"git_commit": git_commit(), "dvc_experiment": experiment_name(), "variant": variant, **tags}
    run = client.create_run(exp.experiment_id, tags=all_tags, run_name=f"{experiment_name()}/{variant}")
    from mlflow.entities import Param

    items = [Param(k, "null" if v is None else str(v)) for k, v in params.items()]
    for i in range(0, len(items), 90):  # log_batch takes at most 100 params
        client.log_batch(run.info.run_id, params=items[i : i + 90])
    return run.info.run_id


@_uninterrupted
def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    _, client = _client()
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
    for i in range(0, len(batch), 900):  # log_batch takes at most 1000 metrics
        client.log_batch(run_id, metrics=batch[i : i + 900])


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
            self.pending += [(f"train/{k}", float(v), step) for k, v in logs.items()
                             if k in CURVE_KEYS and (f"train/{k}", step) not in self.logged]

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

    monitor = SystemMetricsMonitor(run_id, sampling_interval=5, resume_logging=True,
                                   tracking_uri=tracking_uri())
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


# ------------------------------------------------------------------ run lifecycle
# A run is RUNNING while a process trains it. That process is named in the run's
# OWNER_TAG, so that a run whose process died without ending it (kill -9, the OOM
# killer, a lost machine) is found and marked KILLED by the next stage that opens the
# store: MLflow never shows a dead run as running for long.

OWNER_TAG = "cotdistill.process"


def _process_record(pid: int) -> dict:
    import socket

    import psutil

    return {"host": socket.gethostname(), "boot": round(psutil.boot_time()), "pid": pid,
            "started": round(psutil.Process(pid).create_time(), 2)}


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
        logging.getLogger(__name__).warning("MLflow run %s (%s) was left RUNNING by process %s, which is gone: "
                                            "marked KILLED", run.info.run_id, run.info.run_name, owner.get("pid"))
    return closed
