"""Which settings make a trained student the same bits on every x86 CPU, and what they cost.

Each arm trains the default student (t5-tiny with its preset's optimizer, adamw_torch_fused;
the default params' coin_flip data, gold rationale targets: sequences as long as the cot
variant's) for `--steps` steps through the project's own `train()`, then decodes `--decode`
test questions greedily, in a fresh process whose environment holds the arm's settings
(the math libraries read them when
they load). It prints a hash of the trained weights and of the outputs, and the seconds
per step side by side with the native arm.

Other processors are emulated with `qemu-x86_64 -cpu MODEL` (Debian's qemu-user): an
Intel Haswell and an AMD EPYC Rome, both AVX2 without AVX512 (QEMU's TCG runs no AVX512).
The instructions are emulated exactly, so a hash that differs there comes from another
code path that a library chose for that processor, as it would on real hardware.
Emulation is about 10x slower: keep `--steps` small.

    python benchmarks/cpu_repro.py --steps 6 --repeats 2 --qemu Haswell-v4 EPYC-Rome
    python benchmarks/cpu_repro.py --ops --qemu Haswell-v4 EPYC-Rome   # op by op, in a minute
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

ARMS = {
    "native": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl_avx2": {"MKL_CBWR": "AVX2"},
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "deterministic": {"PROBE_DETERMINISTIC": "1"},
    "native_adamw_foreach": {"PROBE_OPTIMIZER": "adamw_torch"},  # the optimizer before adamw_torch_fused
    "avx2_paths": {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "portable": None,  # machine.PORTABLE, the project's default
}


def worker(steps: int, n_decode: int, threads: int) -> dict:
    if os.environ.get("PROBE_DETERMINISTIC"):
        import torch

        torch.use_deterministic_algorithms(True)
    import torch

    from cotdistill.core import machine
    from cotdistill.core.catalog.students import STUDENTS
    from cotdistill.core.config import load_params
    from cotdistill.evaluate.decoding import DecodeOptions, decode
    from cotdistill.prepare.datasets.synthetic import load_coin_flip
    from cotdistill.train.students.architectures import ARCHITECTURES
    from cotdistill.train.students.t5 import load_student
    from cotdistill.train.students.tokenizer import tokenizer_corpus
    from cotdistill.train.students.training import resolve, train
    from cotdistill.train.variants import gold_rows

    torch.set_num_threads(threads)
    params = load_params(REPO / "params.yaml")
    splits = load_coin_flip(params)
    train_rows = splits["train"]
    pairs = [(r["question"], r["target"]) for r in gold_rows(train_rows, [])]
    preset = STUDENTS.get("t5-tiny")
    import dataclasses

    cfg = resolve(
        dataclasses.replace(
            params.train,
            max_steps=steps,
            save_steps=10**6,
            eval_steps=10**6,
            logging_steps=1,
            optimizer=os.environ.get("PROBE_OPTIMIZER"),
        ),
        preset,
    )
    model, tok = load_student(preset, tokenizer_corpus(train_rows), seed=0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as ckpt:
        metrics, _ = train(model, tok, pairs, [], cfg, Path(ckpt), seed=0, arch=ARCHITECTURES.get(preset.architecture))
    train_s = time.perf_counter() - start
    weights = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        weights.update(name.encode())
        weights.update(t.detach().contiguous().numpy().tobytes())
    model.eval()
    questions = [r["question"] for r in splits["test"][:n_decode]]
    start = time.perf_counter()
    outputs = decode(model, tok, questions, 16, DecodeOptions(max_new_tokens=64), progress=False)
    decode_s = time.perf_counter() - start
    return {
        "weights": weights.hexdigest()[:16],
        "outputs": hashlib.sha256("\n".join(outputs).encode()).hexdigest()[:16],
        "train_loss": metrics["train_loss"],
        "s_per_step": train_s / steps,
        "decode_s": decode_s,
        "signature": machine.signature(threads),
    }


def ops_worker(threads: int) -> dict:
    """A hash of each op's output on fixed inputs (numpy-made, so that torch's own RNG is
    not in the comparison): which kernels give other bits on another processor."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)

    def t(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    def h(x):
        return hashlib.sha256(x.detach().contiguous().numpy().tobytes()).hexdigest()[:10]

    a, b, x = t(64, 256), t(256, 1024), t(32, 40, 256)
    out = {
        "matmul (MKL sgemm)": h(a @ b),
        "bmm": h(torch.bmm(x[:, :, :64], x[:, :, :64].transpose(1, 2))),
        "softmax": h(torch.softmax(x, -1)),
        "log_softmax": h(torch.log_softmax(x, -1)),
        "sum": h(x.sum(-1)),
        "rsqrt": h(torch.rsqrt(x.abs() + 1e-6)),
        "exp": h(torch.exp(x)),
        "tanh": h(torch.tanh(x)),
        "gelu (tanh)": h(torch.nn.functional.gelu(x, approximate="tanh")),
        "sin": h(torch.sin(x)),
        "cos": h(torch.cos(x)),
        "silu": h(torch.nn.functional.silu(x)),
        "log": h(torch.log(x.abs() + 1e-3)),
        "pow": h(x.abs().pow(1.7)),
        "sqrt (MKL VML)": h(torch.sqrt(x.abs())),
        "atan (MKL VML)": h(torch.atan(x)),
    }
    for name, kw in (
        ("AdamW foreach (adamw_torch)", {"foreach": True}),
        ("AdamW fused (adamw_torch_fused)", {"fused": True}),
    ):
        param = torch.nn.Parameter(t(256, 256))
        opt = torch.optim.AdamW([param], lr=1e-3, **kw)
        for _ in range(3):
            param.grad = t(256, 256)
            opt.step()
        out[name] = h(param)
    return out


def run_arm(arm: str, args, qemu: str | None = None) -> dict:
    from cotdistill.core import machine

    env = {k: v for k, v in os.environ.items() if k not in machine.PORTABLE and k != machine.MODE_ENV}
    env.update(machine.PORTABLE if ARMS[arm] is None else ARMS[arm])
    env["COTDISTILL_FLOAT_PATHS"] = "native"  # the arm's own variables, nothing added
    env.update({"TOKENIZERS_PARALLELISM": "false", "COTDISTILL_LOG": "ERROR", "TRANSFORMERS_VERBOSITY": "error"})
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--steps",
        str(args.steps),
        "--decode",
        str(args.decode),
        "--threads",
        str(args.threads),
    ] + (["--ops"] if args.ops else [])
    if qemu:
        cmd = ["qemu-x86_64", "-cpu", qemu] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"arm {arm} ({qemu or 'native CPU'}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--decode", type=int, default=32, help="test questions decoded greedily")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each arm on this CPU (interleaved)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--qemu", nargs="*", default=[], help="qemu CPU models to emulate (qemu-x86_64 -cpu help)")
    ap.add_argument("--qemu-arms", nargs="+", default=["native", "mkl_compatible", "portable"], choices=list(ARMS))
    ap.add_argument("--json", help="write every run here")
    ap.add_argument(
        "--ops",
        action="store_true",
        help="compare single ops instead of a training run (the portable arm, on this CPU and the --qemu ones)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(ops_worker(args.threads) if args.ops else worker(args.steps, args.decode, args.threads)))
        return
    if args.ops:
        cols = {"this CPU": run_arm("portable", args)}
        cols.update({f"qemu {m}": run_arm("portable", args, qemu=m) for m in args.qemu})
        print(f"Each op's output hash with the portable settings (machine.PORTABLE), {args.threads} threads\n")
        print("| op | " + " | ".join(cols) + " | the same everywhere |")
        print("|---|" + "---|" * (len(cols) + 1))
        for op in cols["this CPU"]:
            values = [c[op] for c in cols.values()]
            print(f"| {op} | " + " | ".join(values) + f" | {'yes' if len(set(values)) == 1 else 'NO'} |")
        return
    if args.qemu and not shutil.which("qemu-x86_64"):
        sys.exit("--qemu needs qemu-x86_64 (apt-get install qemu-user)")

    runs: dict[tuple[str, str], list[dict]] = {}
    for rep in range(args.repeats):  # interleaved, so that a busy spell hits every arm alike
        for arm in args.arms:
            runs.setdefault(("this CPU", arm), []).append(run_arm(arm, args))
            print(f"repeat {rep + 1}: {arm} done", file=sys.stderr, flush=True)
    for model in args.qemu:
        for arm in args.qemu_arms:
            runs[(f"qemu {model}", arm)] = [run_arm(arm, args, qemu=model)]
            print(f"qemu {model}: {arm} done", file=sys.stderr, flush=True)

    native = (
        statistics.median(r["s_per_step"] for r in runs[("this CPU", "native")])
        if ("this CPU", "native") in runs
        else None
    )
    portable_here = runs.get(("this CPU", "portable"), [{}])[0].get("weights")
    cpu = runs[next(iter(runs))][0]["signature"]["cpu"]
    print(
        f"\n{args.steps} training steps of t5-tiny (batch 32, gold targets) + {args.decode} greedy decodes, "
        f"{args.threads} threads; this CPU: {cpu}\n"
    )
    print(
        "| processor | arm | settings | ATen | weights | same weights every repeat | outputs "
        "| same weights as native here | same as portable here | s/step (median) | vs native |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (where, arm), rs in runs.items():
        r0 = rs[0]
        settings = ", ".join(f"{k}={v}" for k, v in (r0["signature"]["env"].items()) if v) or "-"
        if arm == "deterministic":
            settings = "use_deterministic_algorithms"
        if arm == "native_adamw_foreach":
            settings = "optimizer adamw_torch (foreach)"
        stable = "yes" if len({r["weights"] for r in rs}) == 1 else "NO"
        same_native = "yes" if r0["weights"] == runs.get(("this CPU", "native"), [{}])[0].get("weights") else "no"
        same_portable = "yes" if r0["weights"] == portable_here else "no"
        s = statistics.median(r["s_per_step"] for r in rs)
        ratio = f"{s / native:.2f}x" if native and where == "this CPU" else "(emulated)"
        print(
            f"| {where} | {arm} | {settings} | {r0['signature']['cpu_capability']} | {r0['weights']} | "
            f"{stable if len(rs) > 1 else '-'} | {r0['outputs']} | {same_native} | {same_portable} | "
            f"{s:.3f} | {ratio} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({f"{w} / {a}": rs for (w, a), rs in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
