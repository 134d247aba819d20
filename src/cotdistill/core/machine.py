"""What a float result depends on besides code, params and data, and the settings meant to
make it the same on every x86-64 CPU with AVX2.

A trained student's weights, and so its greedy outputs and accuracy, are a function of
the code, params, data, the torch version, the thread count and the code paths that the
math libraries pick for the processor: MKL's GEMM kernels (BLAS), ATen's vectorised
kernels (softmax, reductions, the optimizer) and oneDNN's. Left alone each picks the
widest instructions the CPU has, and the float sums then differ between processors in
their last bits, which training turns into other students. `PORTABLE` pins every one of
them to a path meant to run the same way on every x86-64 CPU with AVX2; so far it gave the
same weights on the three processors compared (an AMD EPYC Zen 4, and Intel Haswell and
AMD EPYC Rome under emulation). `benchmarks/cpu_repro.py` measures what each setting
changes and costs (README, "Reproducibility").

The settings are environment variables that the libraries read once, when they load:
`apply` sets them before torch is imported (stage.run calls it first), and
`signature` records, with every result, what it was made with.
"""

from __future__ import annotations

import os
import platform
import sys

# MKL's conditional numerical reproducibility: COMPATIBLE is the code path that MKL runs
# alike on every x86 processor, Intel or AMD (its AVX2 branch still differs between them:
# benchmarks/cpu_repro.py). ATen's kernels at AVX2 (not AVX512, which not every CPU has),
# oneDNN at AVX2 likewise.
PORTABLE = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
MODES = ("portable", "native")
# Where a user chooses: `COTDISTILL_FLOAT_PATHS=native` trades portability for the CPU's
# fastest paths (results then depend on the processor, which the signature names).
MODE_ENV = "COTDISTILL_FLOAT_PATHS"


def mode() -> str:
    value = os.environ.get(MODE_ENV, "portable")
    if value not in MODES:
        from .errors import ConfigError

        raise ConfigError(f"{MODE_ENV}={value!r}: allowed values are {', '.join(MODES)}")
    return value


def apply() -> list[str]:
    """Set PORTABLE's variables (unless the mode is native or the user set one already);
    returns the names that came too late because torch was already imported."""
    if mode() == "native":
        return []
    late = []
    for name, value in PORTABLE.items():
        if name in os.environ:
            continue  # the user's own choice wins, and the signature records it
        os.environ[name] = value
        if "torch" in sys.modules:
            late.append(name)
    return late


def cpu_name() -> str:
    """The processor's vendor and model, as the kernel reports them ("AuthenticAMD AMD EPYC")."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "model name") and key not in fields:
                    fields[key] = value.strip()
                if len(fields) == 2:
                    break
    except OSError:
        pass
    name = " ".join(v for v in (fields.get("vendor_id"), fields.get("model name")) if v)
    return name or platform.processor() or platform.machine()


def signature(threads: int) -> dict:
    """What a float result made in this process depends on: torch's version, the thread
    count, the kernels' instruction set and the settings above. `cpu` names the processor;
    in portable mode it does not change the result."""
    import torch

    sig = {
        "torch": torch.__version__,
        "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "float_paths": mode(),
        "env": {name: os.environ.get(name) for name in PORTABLE},
        "cpu": cpu_name(),
    }
    if torch.cuda.is_available():  # a GPU computes the model: its kernels decide the floats
        sig["gpu"] = f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
    return sig


def float_key(sig: dict) -> dict:
    """The part of a signature that decides the floats: all of it but the processor's
    name in portable mode (where every AVX2 CPU takes the same paths), all of it in native."""
    if sig.get("float_paths") == "portable" and sig.get("cpu_capability") in ("AVX2", "AVX512"):
        return {k: v for k, v in sig.items() if k != "cpu"}
    return dict(sig)


def describe(sig: dict) -> str:
    """One line for a report: what the floats of a result depend on (the processor only
    where it decides them)."""
    settings = ", ".join(f"{k}={v}" for k, v in sig.get("env", {}).items() if v)
    where = (
        f"portable float code paths ({settings}; kernels {sig.get('cpu_capability')}), the same on "
        "the 3 x86-64 CPUs compared so far (benchmarks/results/cpu_repro.md)"
        if "cpu" not in float_key(sig)
        else f"this processor's own float code paths ({sig.get('cpu')}, kernels {sig.get('cpu_capability')}"
        f"{'; ' + settings if settings else ''})"
    )
    return f"torch {sig.get('torch')}, {sig.get('threads')} threads, {where}"
