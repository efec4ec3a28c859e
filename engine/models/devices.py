"""Turn the user's `--device` and `--dtype` words into torch objects, with one-line errors."""

from __future__ import annotations

import re

import torch

from conceptlab.engine.errors import UsageError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(spec: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device must exist on this machine."""
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device mps: no Apple GPU is available here; use --device cpu or auto.")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise UsageError(f"--device {spec!r} is not a device; use one of {DEVICE_CHOICES}.")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: no CUDA GPU is available here; use --device cpu or auto.")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) exist here.")
    return torch.device("cuda", index)


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """`auto` is float32 on CPU and MPS, bfloat16 on CUDA GPUs that support it, float16 on older ones."""
    spec = spec.strip().lower()
    if spec == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if spec not in DTYPES:
        raise UsageError(f"--dtype {spec!r} is not supported; use auto, {', '.join(DTYPES)}.")
    return DTYPES[spec]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
