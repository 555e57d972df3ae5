"""Device and precision, explicit: which device a run uses and which dtype autocast runs in."""

from __future__ import annotations

import contextlib
import functools
import platform
import subprocess

import torch

from shared.cli import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """auto: cuda > mps > cpu. Asking for a device this machine lacks is one clear sentence."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def _cpuinfo_field(*names: str) -> str:
    """The value of the first /proc/cpuinfo line that starts with one of `names` ("" if none, or no file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(names)), "")
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """The CPU's instructions that compute bf16 natively (AVX512-BF16, AMX-BF16, Arm's BF16), or ()."""
    if platform.system() == "Darwin":  # Apple M2 and later
        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True,
                                 timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ()
        return ("arm_bf16",) if out == "1" else ()
    flags = _cpuinfo_field("flags", "Features").split()
    return tuple(name for name in ("avx512_bf16", "amx_bf16", "bf16") if name in flags)


def cpu_model() -> str:
    """The CPU's name as the system gives it ("AMD EPYC 9R14", "Intel(R) Xeon(R) Processor"), or the arch."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full fp32. auto: on CUDA bf16 where the GPU has it, else fp16; on a
    CPU with native bf16 instructions bf16 (its matrix products run several times faster than fp32 there:
    bench/results/cpu_peak.txt); else off."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_features() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def amp_name(dtype: torch.dtype | None) -> str:
    """bf16, fp16 or off: how a run record names its precision."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "off")


def describe_amp(amp: str, device: torch.device, dtype: torch.dtype | None) -> str:
    """What --amp chose and why, for a run's first line: 'amp bf16 (auto: this CPU has avx512_bf16)'."""
    name = amp_name(dtype) if dtype is not None else "off (fp32)"
    if amp != "auto":
        return f"amp {name}"
    if device.type == "cpu":
        features = cpu_bf16_features()
        why = f"this CPU has {', '.join(features)}" if features else "this CPU has no native bf16"
        return f"amp {name} (auto: {why})"
    return f"amp {name} (auto)"


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision for the forward pass, or nothing when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
