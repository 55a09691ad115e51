"""What the CPU can do for int8 inference, which decides both a graph rewrite and what speed to expect."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# int8 dot products that accumulate straight into 32 bits: onnxruntime's uint8 x int8 kernels are
# exact and several times faster with them, and saturate without them (see engine.optimize)
_INT8 = (("amx_int8", "AMX"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"))


@functools.lru_cache(maxsize=1)
def describe() -> dict:
    """CPU model, usable CPUs and the best int8 instruction set (from /proc/cpuinfo; elsewhere less)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    int8 = next((name for flag, name in _INT8 if flag in flags), "AVX2" if "avx2" in flags else "none")
    return {"cpu": model, "cpus": usable_cpus(), "int8_instructions": int8}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def int8_dot_product() -> bool:
    """Whether int8 x int8 products accumulate without saturation in onnxruntime's fast kernels."""
    forced = os.environ.get("VOXCLONE_INT8_DOT")  # "0"/"1": for tests and unusual CPUs
    if forced in ("0", "1"):
        return forced == "1"
    return describe()["int8_instructions"] in {name for _, name in _INT8}


def label(info: dict | None = None) -> str:
    i = info or describe()
    return f"{i['cpu']}, {i['cpus']} CPUs, int8 via {i['int8_instructions']}"
