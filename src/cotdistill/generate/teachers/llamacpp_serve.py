"""Run llama.cpp's OpenAI-compatible server (from the `xllamacpp` wheel) until stopped.

    python -m cotdistill.generate.teachers.llamacpp_serve --model FILE.gguf --port N [--parallel 8]

`xllamacpp` ships llama.cpp prebuilt (no compiler, installs in seconds) but no command
line: this is its command line. The server is llama.cpp's own C++ server (continuous
batching over `--parallel` slots, prompt-prefix reuse per slot), running in this
process's native threads. It exits on SIGTERM / SIGINT, and also when its parent dies
(a `kill -9` of the pipeline must not leave a server holding two cores).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def build_params(xlc, args):
    p = xlc.CommonParams()
    p.model.path = args.model
    p.model_alias = args.alias or os.path.basename(args.model)
    p.port = args.port
    p.hostnames = ["127.0.0.1"]
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx_per_slot * args.parallel  # split evenly between the slots
    p.cont_batching = True
    p.cache_prompt = True  # a slot keeps its last prompt's KV: the few-shot prefix is computed once per slot
    threads = args.threads or min(os.cpu_count() or 1, 8)
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    # Busy-polling worker threads help on an idle machine and hurt badly on cores shared with
    # other jobs; 0 makes them sleep between graph nodes.
    p.cpuparams.poll = args.poll
    p.cpuparams_batch.poll = args.poll
    p.verbosity = args.verbosity
    p.warmup = True
    return p


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--alias", default=None, help="the model name requests use (default: the file name)")
    ap.add_argument("--parallel", type=int, default=8, help="slots decoded together (continuous batching)")
    ap.add_argument("--ctx-per-slot", type=int, default=2048, help="prompt + completion tokens per slot")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the cores, at most 8)")
    ap.add_argument("--poll", type=int, default=0, help="llama.cpp busy-poll level 0-100")
    ap.add_argument("--verbosity", type=int, default=1)
    args = ap.parse_args(argv)

    import xllamacpp as xlc

    parent = os.getppid()
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # delivered to sigtimedwait below, not as exceptions
    server = xlc.Server(build_params(xlc, args))  # noqa: F841  (serves while referenced)
    print(f"llamacpp_serve: listening on {server.listening_address}", flush=True)
    while os.getppid() == parent:
        if signal.sigtimedwait(signals, 1.0) is not None:
            break
    # Leave without running the server's destructor: the process is ending anyway, and
    # llama.cpp's shutdown waits for in-flight HTTP connections.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
