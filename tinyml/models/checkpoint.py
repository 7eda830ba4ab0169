"""Checkpoints: weights plus everything needed to rebuild, preprocess for and reproduce the model.

One file carries the model config, the input preprocessing convention (used by quantize and the device bench),
the full training config, metrics, seed and commit. Training state for `--resume` rides along in `last.pt`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinyml.errors import TinymlError
from tinyml.models.mobilenet import ModelConfig, build_model
from tinyml.util import atomic_path, git_commit

FORMAT = "tinyml.checkpoint"
VERSION = 1


def preprocess_for(cfg: ModelConfig) -> dict[str, Any]:
    """Input convention: float input = uint8 * input_scale + input_offset (NCHW); int8 input = uint8 - 128."""
    return {
        "resolution": cfg.resolution,
        "channels": cfg.channels,
        "color": "rgb" if cfg.channels == 3 else "gray",
        "layout": "NCHW",
        "input_scale": 1.0 / 255.0,
        "input_offset": 0.0,
        "int8_scale": 1.0 / 255.0,
        "int8_zero_point": -128,
        "classes": ["non_person", "person"] if cfg.classes == 2 else [str(i) for i in range(cfg.classes)],
    }


@dataclass
class Checkpoint:
    """What a checkpoint says about its model (the weights are loaded into the returned model)."""

    model_config: ModelConfig
    preprocess: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    seed: int | None = None
    commit: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    cfg: ModelConfig,
    *,
    train: dict | None = None,
    metrics: dict | None = None,
    epoch: int | None = None,
    seed: int | None = None,
    resume_state: dict | None = None,
    **extra: Any,
) -> Path:
    """Write atomically (a killed run never leaves half a checkpoint). `extra` keys are kept verbatim."""
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocess": preprocess_for(cfg),
        "train": train or {},
        "metrics": metrics or {},
        "epoch": epoch,
        "seed": seed,
        "commit": git_commit(),
        "extra": extra,
    }
    if resume_state is not None:
        obj["resume_state"] = resume_state
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw dict of a tinyml checkpoint; TinymlError for a missing file or a file that is not ours."""
    path = Path(path)
    if not path.is_file():
        raise TinymlError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (pickle, zip, EOF) for foreign files
        raise TinymlError(
            f"{path} is not a tinyml checkpoint (torch cannot read it: {type(e).__name__})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TinymlError(f"{path} is not a tinyml checkpoint")
    if obj.get("version") != VERSION:
        raise TinymlError(
            f"{path} is tinyml checkpoint version {obj.get('version')}, this tinyml reads {VERSION}"
        )
    return obj


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model from its config, load the weights, return it in eval mode with its metadata."""
    obj = read_checkpoint_file(path)
    cfg = ModelConfig.from_dict(obj["model_config"])
    model = build_model(cfg)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise TinymlError(f"{path}: weights do not fit the stored model config ({first})") from None
    model.eval()
    ck = Checkpoint(
        model_config=cfg,
        preprocess=obj.get("preprocess") or preprocess_for(cfg),
        train=obj.get("train") or {},
        metrics=obj.get("metrics") or {},
        epoch=obj.get("epoch"),
        seed=obj.get("seed"),
        commit=obj.get("commit", "unknown"),
        extra=obj.get("extra") or {},
        path=Path(path),
    )
    return model, ck
