"""MLflow tracking: one run per (DVC experiment, variant), in a SQLite store at the root.

The store path comes from the real repository root (DVC_ROOT inside queued
experiments), so every experiment of a sweep logs to the same `mlflow.db`.
$MLFLOW_TRACKING_URI, when set, wins (a team server, or a test's own store).
The train stage creates the run and streams its curves; the evaluate stage adds its
metrics to the same run, found through the run id saved beside the model.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .paths import git_commit, repo_root

EXPERIMENT = "cotdistill"
CURVE_KEYS = ("loss", "learning_rate", "eval_loss", "grad_norm")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _client():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow, mlflow.MlflowClient()


def experiment_name() -> str:
    """The DVC experiment being run ('workspace' for a plain `dvc repro`)."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


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


def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    _, client = _client()
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
    for i in range(0, len(batch), 900):  # log_batch takes at most 1000 metrics
        client.log_batch(run_id, metrics=batch[i : i + 900])


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    _, client = _client()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


def end_run(run_id: str, status: str = "FINISHED") -> None:
    _, client = _client()
    client.set_terminated(run_id, status=status)


def loss_callback(run_id: str):
    """A TrainerCallback that streams loss, learning rate and eval loss to the run."""
    from transformers import TrainerCallback

    class _Curves(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                vals = {f"train/{k}": v for k, v in logs.items() if k in CURVE_KEYS}
                if vals:
                    log_metrics(run_id, vals, step=state.global_step)

    return _Curves()


def reopen_run(run_id: str) -> bool:
    """Mark an earlier run of a resumed training RUNNING again; False if it is gone."""
    _, client = _client()
    try:
        client.get_run(run_id)
    except Exception:  # deleted run, or another store: the caller starts a fresh run
        return False
    client.update_run(run_id, status="RUNNING")
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


def log_folder(run_id: str, folder: str, artifact_path: str = "model") -> None:
    """Copy a folder (the trained model) into the run's artifacts."""
    _, client = _client()
    client.log_artifacts(run_id, folder, artifact_path)
