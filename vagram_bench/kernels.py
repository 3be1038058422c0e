"""Which CPU kernels a run computes with: the ``kernels=avx2`` pin and what ``config.json`` records.

PyTorch, MKL, OpenBLAS, oneDNN and numpy each pick their SIMD kernels from the CPU they run on. The
kernels of different instruction sets round differently (a vectorised ``log`` or ``exp`` is not the
scalar one, a wider vector changes which elements a loop's scalar tail computes, a BLAS kernel sums in
another order), so the same seed gives bitwise different numbers on an AVX2 and an AVX-512 CPU, and
on tasks with chaotic distractors the difference grows to a different trajectory within a few
hundred env steps. Each library reads one environment variable, once, when it is loaded, that caps
or fixes its choice; :data:`PIN_ENV` sets all of them to AVX2, the newest instruction set every
x86-64 CPU since 2013/2015 (Intel Haswell, AMD Excavator/Zen) has, so a run computes with the same
kernels on any such CPU (docs/runner.md, "Determinism contract").

The variables only work before the libraries load, and ``import vagram_bench`` already loads numpy.
So ``python -m vagram_bench.run`` (and every job of a sweep, which runs that command) re-executes
itself once with the pinned environment (:func:`reexec_pinned`) before anything else; a run called
from Python (``vagram_bench.run.main([...])``) computes with the kernels its process loaded, and
``config.json`` says which (:func:`kernel_info`).

This module imports neither torch nor numpy at import time.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any, Mapping, MutableMapping, Sequence

from vagram_bench.cli import UsageError

__all__ = [
    "PIN",
    "NATIVE",
    "CHOICES",
    "PIN_ENV",
    "ENV_CHOICE",
    "requested_kernels",
    "pinned",
    "pin_unavailable",
    "pinned_environment",
    "reexec_pinned",
    "kernel_info",
    "KernelChoiceError",
]

PIN = "avx2"
NATIVE = "native"
CHOICES = (PIN, NATIVE)

#: The pin: every library's kernels fixed to AVX2 (each variable is read once, when the library loads).
PIN_ENV: dict[str, str] = {
    # PyTorch's own kernels (ATen's DispatchStub: elementwise ops, reductions, fused Adam).
    "ATEN_CPU_CAPABILITY": "avx2",
    # MKL (torch's matmuls on x86 wheels): no code path above AVX2 (it takes its AVX2 path on AMD CPUs
    # anyway). Not MKL_CBWR=AVX2 (MKL's reproducibility mode): it rounds differently from the plain
    # AVX2 path the published runs used (61.533067 vs their 61.533064 at the first evaluation of
    # mbpo_mse, InvertedDoublePendulumDistract-20, seed 3).
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    # oneDNN (torch's mkldnn ops, bf16 matmuls): no kernel above AVX2.
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # OpenBLAS bundled with numpy (the distractors' matrix-vector products): the Haswell (AVX2) kernels.
    "OPENBLAS_CORETYPE": "Haswell",
    # numpy's own dispatched ufunc loops (float64 exp, log1p, ... have AVX-512 versions that round
    # differently): the AVX-512 targets off, the AVX2 ones (X86_V3) stay. numpy 2.x names; numpy
    # ignores names it does not know, so kernel_info records what numpy actually enabled.
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}

#: Environment variable that chooses the kernels when the command line does not (``avx2`` or ``native``).
ENV_CHOICE = "VAGRAM_BENCH_KERNELS"
#: Set by :func:`reexec_pinned` for the re-executed process: the inherited values the pin replaced (JSON).
_ENV_REPLACED = "VAGRAM_BENCH_KERNELS_REPLACED"


class KernelChoiceError(UsageError):
    """An unknown ``kernels=`` value (a usage error, exit code 2)."""


def _check(value: str, where: str) -> str:
    if value not in CHOICES:
        raise KernelChoiceError(f"{where}: expected one of {', '.join(CHOICES)}, got {value!r}")
    return value


def requested_kernels(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """The kernels a command line asks for: its ``kernels=`` / ``--kernels`` value, else
    ``$VAGRAM_BENCH_KERNELS``, else ``avx2`` (the pin).

    Raises:
        KernelChoiceError: a value other than ``avx2`` / ``native``.

    Examples:
        >>> requested_kernels(["agent=sac", "kernels=native"], {})
        'native'
        >>> requested_kernels(["--kernels", "native"], {}), requested_kernels([], {"VAGRAM_BENCH_KERNELS": "native"})
        ('native', 'native')
        >>> requested_kernels(["agent=sac"], {})
        'avx2'
    """
    environ = os.environ if environ is None else environ
    value = None
    tokens = list(argv)
    for i, tok in enumerate(tokens):
        if tok == "--":
            break
        head, sep, tail = tok.lstrip("-").partition("=")
        if head != "kernels" or (not tok.startswith("--") and not sep):
            continue
        if sep:
            value = tail
        elif i + 1 < len(tokens):
            value = tokens[i + 1]
    if value is not None:
        return _check(value, "kernels")
    if environ.get(ENV_CHOICE):
        return _check(environ[ENV_CHOICE], ENV_CHOICE)
    return PIN


def pinned(environ: Mapping[str, str] | None = None) -> bool:
    """Whether every variable of :data:`PIN_ENV` has the pin's value in ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in PIN_ENV.items())


def _numpy_cpu_features() -> tuple[dict[str, bool], list[str]]:
    """numpy's ``{feature: enabled}`` (hardware support minus NPY_DISABLE_CPU_FEATURES) and its dispatch targets."""
    try:
        from numpy._core import _multiarray_umath as umath  # numpy >= 2
    except ImportError:  # numpy 1.26
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    return dict(umath.__cpu_features__), list(umath.__cpu_dispatch__)


def pin_unavailable() -> str | None:
    """Why this machine cannot run the pin (``None`` when it can): it needs an x86-64 CPU with AVX2."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return f"the pin needs an x86-64 CPU with AVX2; this is {platform.machine() or 'an unknown machine'}"
    features, _ = _numpy_cpu_features()  # hardware detection (numpy is loaded by `import vagram_bench`)
    if not (features.get("AVX2") and features.get("FMA3")):
        return "the pin needs an x86-64 CPU with AVX2 and FMA; this CPU has neither or only one"
    return None


def pinned_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``environ`` with :data:`PIN_ENV` set, and the inherited values the pin replaced (``{var: value}``)."""
    replaced = {k: environ[k] for k, v in PIN_ENV.items() if k in environ and environ[k] != v}
    return {**environ, **PIN_ENV}, replaced


def reexec_pinned(argv: Sequence[str], module: str = "vagram_bench.run") -> None:
    """Replace this process by ``python -m <module> <argv>`` under the pin, when the command asks for
    the pin (:func:`requested_kernels`), the process is not pinned yet and the machine can run it;
    otherwise return (and the run records why its kernels are not pinned).

    Called first by the command-line entry point (before torch loads; numpy has loaded with
    ``import vagram_bench``, hence the new process). Inherited values of the pin's variables are
    replaced (``kernels=native`` keeps them) and reported on stderr; the new process records them in
    ``config.json``.

    Raises:
        KernelChoiceError: a bad ``kernels=`` value.
    """
    if requested_kernels(argv) != PIN or pinned() or pin_unavailable() is not None:
        return
    env, replaced = pinned_environment(os.environ)
    if replaced:
        given = ", ".join(f"{k}={v}" for k, v in replaced.items())
        print(f"kernels=avx2 replaces {given} from the environment (pass kernels=native to keep it)",
              file=sys.stderr)
        env[_ENV_REPLACED] = json.dumps(replaced, sort_keys=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


def _blas_libraries() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process (numpy's OpenBLAS, ...) with the kernel architecture
    each chose, via threadpoolctl; torch's statically linked MKL is not among them (see ``torch_blas``)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # a declared dependency; an environment without it records that
        return [{"error": "threadpoolctl is not installed"}]
    return [
        {"library": info.get("internal_api"), "version": info.get("version"),
         "architecture": info.get("architecture"), "file": os.path.basename(str(info.get("filepath", "")))}
        for info in threadpool_info() if info.get("user_api") == "blas"
    ]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_info(requested: str, environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """What ``config.json`` records under ``"kernels"``: the kernels this process actually computes with.

    ``requested`` (``avx2`` / ``native``), ``pinned`` (every pin variable has the pin's value, so the
    run's numbers are those of any AVX2 CPU), ``torch_cpu_capability`` (PyTorch's kernels, e.g.
    ``AVX2``, ``AVX512``, ``DEFAULT``), ``torch_blas``, ``numpy_simd`` (numpy's enabled dispatch
    targets), ``blas`` (threadpoolctl: library, version, kernel architecture), ``environment`` (the
    pin's variables as this process saw them, ``null`` = unset), ``replaced`` (inherited values the
    pin replaced), ``unavailable`` (why the pin could not apply, if it could not), ``cpu``.
    """
    import torch

    environ = os.environ if environ is None else environ
    features, dispatch = _numpy_cpu_features()
    try:
        replaced = json.loads(environ.get(_ENV_REPLACED, "{}"))
    except ValueError:
        replaced = {"unreadable": environ.get(_ENV_REPLACED)}
    capability = torch.backends.cpu.get_cpu_capability()
    info: dict[str, Any] = {
        "requested": requested,
        # the variables are read when the libraries load: a process whose torch runs other kernels
        # was not started under them
        "pinned": pinned(environ) and capability == "AVX2",
        "torch_cpu_capability": capability,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else None,
        "numpy_simd": [f for f in dispatch if features.get(f)],
        "blas": _blas_libraries(),
        "environment": {k: environ.get(k) for k in PIN_ENV},
        "replaced": replaced,
        "cpu": _cpu_model(),
    }
    if requested == PIN and not info["pinned"]:
        info["unavailable"] = pin_unavailable() or (
            "the process loaded its libraries before the pin (a run started from Python, not by "
            "`python -m vagram_bench.run`)")
    return info
