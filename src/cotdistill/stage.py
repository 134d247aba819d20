"""What every stage script shares: argument parsing basics, logging, clean failures."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable

from .errors import UserError


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return ap


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("COTDISTILL_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    # Quiet the libraries' own progress chatter; our loops draw their own bars.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        main(argv)
    except UserError as exc:  # bad params, bad data, missing inputs: one line; a bug shows its traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def set_threads(threads: int | None) -> int:
    """Use `threads` torch CPU threads (None: torch's default); returns the count in use.

    Float reductions, and so trained weights and greedy outputs, depend on the thread
    count: every result records it, and one comparison keeps it fixed.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def log_config(name: str, cfg: dict) -> None:
    logging.getLogger(name).info("resolved config: %s", json.dumps(cfg, sort_keys=True, default=str))
