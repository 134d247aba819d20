"""`cotdistill report --experiments`: every DVC experiment (or MLflow run) in one table and
two plots, accuracy against student size and against training-set size (the paper's
scaling figures).

One record per (experiment, variant): its params (student, dataset, training questions),
the student's architecture (`family`: t5 or causal, so that both families share the
student-size plot, told apart) and its test accuracies with and without the calculator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cotdistill.core.errors import DataError
from cotdistill.core.io import atomic_path, write_text

FIELDS = (
    "experiment",
    "dataset",
    "student",
    "params_m",
    "n_train",
    "train_examples",
    "variant",
    "id",
    "ood",
    "id_calc",
    "ood_calc",
)


def _params_m(student: str | None, fallback: Any = None) -> float | None:
    from cotdistill.core.catalog.students import STUDENTS

    if student in STUDENTS:
        return STUDENTS.get(student).params_m
    try:
        return float(fallback) if fallback is not None else None
    except (TypeError, ValueError):
        return None


def _family(student: str | None) -> str | None:
    from cotdistill.core.catalog.students import STUDENTS

    return STUDENTS.get(student).architecture if student in STUDENTS else None


def _acc(m: dict | None) -> float | None:
    return m.get("accuracy") if isinstance(m, dict) else None


def records_from_dvc(shown: list[dict]) -> list[dict]:
    """Records from `dvc exp show --json` output (baselines, experiments, workspace)."""

    def label(d: dict) -> str:
        rev = str(d.get("rev", "?"))
        return d.get("name") or (rev if rev == "workspace" else rev[:7])

    revs: list[tuple[str, dict]] = []
    for entry in shown:
        if entry.get("data"):
            revs.append((label(entry), entry["data"]))
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data"):
                    revs.append((label(rev), rev["data"]))
    # The workspace usually repeats a commit or an experiment: let the named one win.
    revs.sort(key=lambda r: r[0] == "workspace")
    out, seen = [], set()
    for name, data in revs:
        params = (data.get("params") or {}).get("params.yaml", {}).get("data", {}) or {}
        metrics = data.get("metrics") or {}
        train = {
            Path(k).stem: (v or {}).get("data") or {} for k, v in metrics.items() if k.startswith("metrics/train/")
        }
        # training questions actually prepared (after max_train / data_fraction), else the param
        prepared = ((metrics.get("metrics/prepare.json") or {}).get("data") or {}).get("n_train")
        for path, blob in sorted(metrics.items()):
            m = (blob or {}).get("data") or {}
            if "variant" not in m or not path.startswith("metrics/evaluate/"):
                continue
            calc = m.get("calculator", {})
            rec = {
                "experiment": name,
                "dataset": params.get("dataset"),
                "student": params.get("model"),
                "family": _family(params.get("model")),
                "params_m": _params_m(params.get("model"), train.get(m["variant"], {}).get("params_m")),
                "n_train": prepared or (params.get("prepare") or {}).get("n_train"),
                "train_examples": train.get(m["variant"], {}).get("train_examples"),
                "variant": m["variant"],
                "id": _acc(m.get("id")),
                "ood": _acc(m.get("ood")),
                "id_calc": _acc(calc.get("id")),
                "ood_calc": _acc(calc.get("ood")),
            }
            key = tuple((k, rec[k]) for k in FIELDS if k != "experiment")
            # Only the workspace is dropped as a repeat: two commits or experiments that score
            # alike are still two runs (a queued sweep's t5-mini matched its baseline's numbers).
            if name == "workspace" and key in seen:
                continue
            seen.add(key)
            out.append(rec)
    return out


def records_from_mlflow(tracking_uri: str, experiment: str = "cotdistill") -> list[dict]:
    """Records from the MLflow store: one per finished run that has evaluation metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise DataError(f"{tracking_uri}: no MLflow experiment named '{experiment}'")
    out = []
    for run in client.search_runs([exp.experiment_id], max_results=50000):
        m, p, t = run.data.metrics, run.data.params, run.data.tags
        if "id/accuracy" not in m:
            continue
        n_train = p.get("prepare.n_train")
        out.append(
            {
                "experiment": t.get("dvc_experiment", run.info.run_id[:8]),
                "dataset": t.get("dataset"),
                "student": t.get("student"),
                "family": _family(t.get("student")),
                "params_m": _params_m(t.get("student"), m.get("train/params_m")),
                "n_train": int(n_train) if n_train and n_train.isdigit() else None,
                "train_examples": m.get("train/train_examples"),
                "variant": t.get("variant"),
                "id": m.get("id/accuracy"),
                "ood": m.get("ood/accuracy"),
                "id_calc": m.get("calculator/id/accuracy"),
                "ood_calc": m.get("calculator/ood/accuracy"),
            }
        )
    return out


def _int(v) -> str:
    return "" if v is None else str(int(v))


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def render_table(records: list[dict]) -> str:
    lines = [
        "# All experiments",
        "",
        "Test accuracy in % (ID: in-distribution, OOD: out-of-distribution; +calc: with the calculator).",
        "",
        "| experiment | dataset | student | params (M) | train questions | train examples | variant "
        "| ID | OOD | ID +calc | OOD +calc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        records,
        key=lambda r: (
            str(r["dataset"]),
            r["params_m"] or 0,
            r["n_train"] or 0,
            str(r["variant"]),
            str(r["experiment"]),
        ),
    ):
        lines.append(
            f"| {r['experiment']} | {r['dataset'] or ''} | {r['student'] or ''} | {r['params_m'] or ''} | "
            f"{r['n_train'] or ''} | {_int(r['train_examples'])} | {r['variant']} | {_pct(r['id'])} | "
            f"{_pct(r['ood'])} | "
            f"{_pct(r['id_calc'])} | {_pct(r['ood_calc'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_scaling(records: list[dict], x: str, xlabel: str, path: Path, log_x: bool) -> None:
    """Accuracy (ID, and with the calculator where measured) against `x`, one line per
    variant (per variant and architecture when both T5 and causal students are there);
    points sharing an x are averaged, every point is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    families = sorted({str(r.get("family")) for r in records})
    series = sorted({(str(r["variant"]), str(r.get("family"))) for r in records})
    colors = {v: f"C{i}" for i, v in enumerate(sorted({v for v, _ in series}))}  # one colour per variant
    for variant, family in series:
        marker, line = ("^", ":") if family == "causal" else ("o", "-")  # one marker per architecture
        for key, style in (("id", f"{line}{marker}"), ("id_calc", f"--{marker}")):
            pts = [
                (r[x], r[key])
                for r in records
                if str(r["variant"]) == variant
                and str(r.get("family")) == family
                and r[x] is not None
                and r[key] is not None
            ]
            if not pts:
                continue
            xs = sorted({p[0] for p in pts})
            means = [sum(a for b, a in pts if b == v) / sum(1 for b, _ in pts if b == v) for v in xs]
            label = (
                variant + (f" ({family})" if len(families) > 1 else "") + (" +calculator" if key == "id_calc" else "")
            )
            ax.plot(xs, [100 * m for m in means], style, label=label, color=colors[variant])
            ax.scatter([p[0] for p in pts], [100 * p[1] for p in pts], color=colors[variant], alpha=0.4, s=12)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy, in-distribution (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_experiment_report(records: list[dict], out_dir: str | Path) -> list[Path]:
    """experiments.md, experiments.json and the two PNG plots; returns their paths."""
    if not records:
        raise DataError("no experiment has evaluation metrics yet (run `dvc exp run` or `dvc repro` first)")
    out = Path(out_dir)
    paths = [
        out / "experiments.md",
        out / "experiments.json",
        out / "accuracy_vs_student_size.png",
        out / "accuracy_vs_train_size.png",
    ]
    write_text(paths[0], render_table(records))
    write_text(paths[1], json.dumps(records, indent=2) + "\n")
    plot_scaling(records, "params_m", "student parameters (millions)", paths[2], log_x=True)
    plot_scaling(records, "n_train", "training questions", paths[3], log_x=True)
    return paths
