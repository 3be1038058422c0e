"""Whether the run's device multiplies in bfloat16 natively, and the warning when bf16 is asked for
where it is not.

bf16 autocast (``agent.sac_bf16``, ``agent.rollout_bf16``) pays only where the hardware multiplies
bf16 matrices natively: on an AMD EPYC with AVX-512-BF16 the paper-config MBPO step ran 2.05x faster
than fp32, on a CPU without (AVX2 only) ``mbpo_mse`` ran at 0.13x, the bf16 matmuls emulated (README
"Speed"). ``config.json`` records :func:`bf16_matmul_hardware` as ``bf16_hardware``, and the runner
prints :func:`bf16_warning` (one line) when a run asks for bf16 on a device without it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

__all__ = ["bf16_matmul_hardware", "cpu_bf16_flags", "bf16_flags_in", "bf16_fields", "bf16_warning"]

#: /proc/cpuinfo flags of native bf16 matmul instructions: x86 AVX-512-BF16 and AMX-BF16, Arm's BF16
#: extension (``Features: ... bf16``)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def bf16_flags_in(cpuinfo: str) -> tuple[str, ...]:
    r"""The flags of :data:`BF16_CPU_FLAGS` in the text of a ``/proc/cpuinfo`` (x86 ``flags`` lines,
    Arm ``Features`` lines).

    Examples:
        >>> bf16_flags_in("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
        ('avx512_bf16',)
        >>> bf16_flags_in("flags\t\t: fpu avx2 fma\n"), bf16_flags_in("Features\t: fp asimd sve bf16 i8mm\n")
        ((), ('bf16',))
    """
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...] | None:
    """The bf16 matmul flags this CPU advertises (``()``: none), or ``None`` where ``/proc/cpuinfo``
    cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return bf16_flags_in(f.read())
    except OSError:
        return None


def bf16_matmul_hardware(device: str = "cpu") -> bool | None:
    """Whether ``device`` multiplies bf16 matrices natively (``None``: cannot tell).

    CPU: the flags of :func:`cpu_bf16_flags`, else torch's own CPU probe (AVX-512-BF16 or AMX);
    CUDA: ``torch.cuda.is_bf16_supported`` without emulation (Ampere and newer).
    """
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        flags = cpu_bf16_flags()
        if flags is not None:
            return bool(flags)
        probe = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        if any(p is not None for p in probe):
            return any(bool(p()) for p in probe if p is not None)
        return None
    if kind == "cuda":
        if not torch.cuda.is_available():
            return None
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.3 has no including_emulation
            return bool(torch.cuda.is_bf16_supported())
    return None


def bf16_fields(agent_config: Any) -> list[str]:
    """The boolean fields of ``agent_config`` whose name says bf16 and that are on
    (``["sac_bf16", "rollout_bf16"]``)."""
    if not dataclasses.is_dataclass(agent_config):
        return []
    return [f.name for f in dataclasses.fields(agent_config)
            if "bf16" in f.name and getattr(agent_config, f.name) is True]


def bf16_warning(agent_config: Any, device: str) -> str | None:
    """One line for stderr when the config asks for bf16 on a device known to lack bf16 matmuls."""
    fields = bf16_fields(agent_config)
    if not fields or bf16_matmul_hardware(device) is not False:
        return None
    asked = " ".join(f"agent.{name}=true" for name in fields)
    what = "this CPU has no bf16 matmul instructions (no avx512_bf16, amx_bf16 or bf16 flag)" \
        if device.startswith("cpu") else f"device {device} has no native bf16 matmuls"
    return (f"warning: {asked}, but {what}: bf16 is emulated and slower than fp32 "
            "(0.13x measured on such a CPU, README 'Speed'); drop it here")
