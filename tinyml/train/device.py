"""Where training runs: `--device auto|cpu|cuda|mps`, and what each device gets (AMP, pinned memory).

`auto` takes CUDA, then Apple's MPS, then the CPU. Asking for a device that is not there is a TinymlError
(one line, non-zero exit). On CUDA, training uses automatic mixed precision (bf16 where the GPU supports it,
else fp16 with a gradient scaler), pinned host memory, non-blocking copies and cuDNN autotuning; those make
GPU results not bit-reproducible. CPU and MPS train in float32 as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinyml.errors import TinymlError

DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "auto (CUDA, then MPS, then CPU; default), cpu, cuda or mps"


def pick_device(requested: str, cuda: bool, mps: bool, torch_version: str = "") -> str:
    """The device name for `requested` given what exists (a pure function, so tests cover every case)."""
    if requested not in DEVICES:
        raise TinymlError(f"unknown device {requested!r} (use {', '.join(DEVICES)})")
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        build = f" (torch {torch_version} has no CUDA support)" if "+cpu" in torch_version else ""
        raise TinymlError(f"--device cuda: no CUDA GPU is available{build}; use --device cpu or auto")
    if requested == "mps" and not mps:
        raise TinymlError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return requested


@dataclass(frozen=True)
class Device:
    """The chosen device and how to train on it."""

    name: str  # cpu, cuda or mps
    requested: str
    amp_dtype: str | None = None  # "bfloat16" / "float16" on CUDA, else None (float32)
    detail: str = ""  # e.g. the GPU's name

    @property
    def torch(self):  # noqa: ANN201 - torch.device, imported lazily
        import torch

        return torch.device(self.name)

    @property
    def pin_memory(self) -> bool:
        return self.name == "cuda"

    @property
    def grad_scaler(self) -> bool:
        """fp16 needs loss scaling against gradient underflow; bf16 has float32's range and does not."""
        return self.amp_dtype == "float16"

    def describe(self) -> str:
        """The first output line of train/prune/sweep: which device, and why when it was chosen for you."""
        how = f"{self.name}" + (f" ({self.detail})" if self.detail else "")
        if self.amp_dtype:
            how += f", mixed precision {self.amp_dtype}"
        return f"device: {how}" + (" [auto: no CUDA or MPS found]" if self.requested == "auto"
                                   and self.name == "cpu" else " [auto]" if self.requested == "auto" else "")


def resolve_device(requested: str = "auto") -> Device:
    """Check the request against this machine and set up the device (cuDNN autotuning on CUDA)."""
    import torch

    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    name = pick_device(requested, torch.cuda.is_available(), mps, torch.__version__)
    if name != "cuda":
        return Device(name, requested)
    torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels once
    amp = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return Device(name, requested, amp_dtype=amp, detail=torch.cuda.get_device_name(0))


def default_workers(cpus: int | None = None) -> int:
    """DataLoader worker processes: one core stays with the training loop; 0 (load in-process) on one core."""
    n = cpus if cpus is not None else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    return max(0, min(4, n - 1))
