"""What every stage script shares: argument parsing basics, logging, clean failures."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from . import machine
from .errors import Outage, UserError, exit_with


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return ap


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: `kill`, `dvc queue kill` and schedulers stop a stage cleanly."""

    signum = signal.SIGTERM


def _terminate(signum, frame):
    raise Interrupted()


def disk_full(exc: BaseException) -> bool:
    """Did `exc` (or what caused it) come from a full disk or quota? torch and safetensors
    report it as their own errors, with the OS message inside."""
    return any(
        (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "No space left on device" in str(e)
        for e in _chain(exc)
    )


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's `main`. What the user can act on ends in one line on stderr: a mistake
    in params or data (exit 2), a service that kept failing or a full disk (exit 1), Ctrl-C
    or SIGTERM (exit 130 / 143;
    the work finished so far is kept for the rerun); a bug shows its traceback."""
    logging.basicConfig(level=os.environ.get("COTDISTILL_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    # Quiet the libraries' own progress chatter; our loops draw their own bars.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    previous = signal.signal(signal.SIGTERM, _terminate)
    name = Path(sys.argv[0]).stem
    try:
        # Before anything loads torch: the math libraries read their code-path settings once.
        late = machine.apply()
        if late:
            logging.getLogger(name).warning(
                "torch was loaded before the stage set %s: the float code paths are this CPU's own (see machine.py)",
                ", ".join(late),
            )
        main(argv)
    except UserError as exc:  # bad params, bad data, missing inputs: one line; a bug shows its traceback
        _close_progress_bars()  # a bar left open would carry the message on its own line
        exit_with(str(exc))
    except Outage as exc:  # a service that kept failing: the rerun resumes when it is back
        _close_progress_bars()
        exit_with(str(exc), 1)
    except KeyboardInterrupt as exc:
        _close_progress_bars()
        signum = getattr(exc, "signum", signal.SIGINT)
        print(
            f"interrupted ({signal.Signals(signum).name}): the {name} stage stopped and left no half-written "
            "output; rerun it to resume (finished work is kept: checkpoints, cached teacher requests)",
            file=sys.stderr,
        )
        sys.exit(128 + signum)
    except Exception as exc:
        if not disk_full(exc):
            raise
        _close_progress_bars()
        where = next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
        print(
            f"error: no space left on the device{f' writing {where}' if where else ''} ({type(exc).__name__}); "
            "nothing half-written was kept: free space and rerun",
            file=sys.stderr,
        )
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _close_progress_bars() -> None:
    """End the progress bars an interrupt left open, so that the message starts a line of its own."""
    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _chain(exc: BaseException | None):
    """`exc` and the exceptions it was raised from or while handling."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def set_threads(threads: int | None) -> int:
    """Use `threads` torch CPU threads (None: torch's default); returns the count in use.

    Float reductions, and so trained weights and greedy outputs, depend on the thread
    count: every result records it, and one comparison keeps it fixed.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def write_timings(path: str | None, timings: dict) -> None:
    """Write how this run went (wall seconds, cache hits, resumes) with where and when it
    ran. A file apart from the metrics: outcomes are the same bytes on every rerun, these
    are not; not a DVC output either (DVC would hash it into dvc.lock), see paths.timings_path."""
    if not path:
        return
    import datetime

    from .io import write_json
    from .paths import git_commit, timings_path

    record = {
        "stage": Path(sys.argv[0]).stem,
        **timings,
        "git_commit": git_commit(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": machine.cpu_name(),
    }
    write_json(timings_path(path), record)


def log_config(name: str, cfg: dict) -> None:
    logging.getLogger(name).info("resolved config: %s", json.dumps(cfg, sort_keys=True, default=str))
