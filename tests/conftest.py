import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One torch thread in this process and in every stage it starts, unless the caller chose:
# `make test` runs several test processes on the two cores (pytest-xdist), and two threads each
# on cores that another job shares run the tiny models' matmuls several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The end-to-end modules, longest first. `make test` hands whole modules to its workers
# in this order (--dist loadfile --no-loadscope-reorder), so that each starts on a long one
# and the short modules fill the gaps; run alone, the order changes nothing.
LONGEST_FIRST = (
    "test_study_pipeline.py",
    "test_pipeline.py",
    "test_pipeline_students.py",
    "test_interrupted_stages.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def repo_root() -> Path:
    return REPO


def run_cmd(args, cwd, env=None, check=True, timeout=900):
    """Run a command, echoing its output on failure (for stage and CLI tests)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def smollm2_folder(request) -> Path:
    """SmolLM2-135M as a plain model folder, dequantized once and kept in pytest's cache.
    Test processes that run side by side take turns: the first writes it, the others wait."""
    import fcntl

    from cotdistill.core.catalog.teachers import TEACHERS
    from cotdistill.generate.teachers.hf_local import export_folder

    cache = request.config.cache.mkdir("smollm2-135m-hf")
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return export_folder(TEACHERS.get("smollm2-135m"), cache / "model")


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def base_params() -> dict:
    """A tiny but complete params dict (the shape of params.yaml)."""
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())


def venv_bin(name: str) -> str:
    """A console script of the environment running the tests (cotdistill, dvc)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def section(name: str, **overrides):
    """A section of the committed params.yaml (generate, train, ...) with `overrides`:
    params.yaml is where every value is set, so tests build stage configs from it."""
    from cotdistill.core.config import load_params

    return dataclasses.replace(getattr(load_params(REPO / "params.yaml"), name), **overrides)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def make_params(overrides: dict, where: str = "params.yaml"):
    """Params of the committed params.yaml with `overrides` merged in key by key, validated."""
    import yaml

    from cotdistill.core.config import parse_params

    return parse_params(_merge(yaml.safe_load((REPO / "params.yaml").read_text()), overrides), where)


def qa_records(pairs, answer_type: str | None = None) -> list[dict]:
    """Records as prepare writes them (id q0, q1, ..., question, answer and, given, the
    answer type) from (question, answer) pairs: what the teacher and filter tests feed."""
    extra = {"answer_type": answer_type} if answer_type else {}
    return [{"id": f"q{i}", "question": q, "answer": a, **extra} for i, (q, a) in enumerate(pairs)]


_HANDLER_LEAKS: list[str] = []


def pytest_configure(config):
    """The tests that interrupt a stage act as Ctrl-C at a terminal does. A pytest started
    as a background job of a non-interactive shell ignores SIGINT, and every stage it
    starts would inherit that: give this process Python's own handler back (exec resets a
    handled signal to its default in the children)."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _signal_handlers_restored(request):
    """Every test starts with the Ctrl-C and SIGTERM handlers the session started with.
    A test that left them changed would pass the change on to later tests and to the stage
    subprocesses they start (an ignored SIGINT is inherited): restore them, and name the
    test in the summary."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        now = signal.getsignal(s)
        if now is not handler:
            _HANDLER_LEAKS.append(f"{request.node.nodeid}: {signal.Signals(s).name} left as {now!r}")
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def pytest_terminal_summary(terminalreporter):
    if _HANDLER_LEAKS:
        terminalreporter.section("signal handlers changed by tests (restored)")
        for line in _HANDLER_LEAKS:
            terminalreporter.write_line(line)
