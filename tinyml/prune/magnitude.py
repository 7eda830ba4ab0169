"""Global unstructured magnitude pruning: the paper's baseline, so a sweep can chart both methods together.

The smallest-magnitude fraction of all conv and dense weights (ranked together across layers) is set to zero
and kept at zero while the model fine-tunes. Biases and BatchNorm are untouched.

Unstructured sparsity is an accounting win only: the int8 .tflite stores every weight densely (zeros
included) and dense int8 kernels multiply by zeros as fast as by anything else. The flatbuffer does not shrink
and the device does not speed up; `nonzero_params` is what a sparse format could at best store.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyml.errors import TinymlError

DENSE_NOTE = ("unstructured sparsity does not shrink a dense int8 flatbuffer or speed up dense kernels: "
              "the .tflite stores and multiplies every zero")


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of every conv and dense layer, in model order."""
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def global_magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing exactly round(sparsity * N) of the N prunable weights, smallest |w| first.

    Ties are broken by position (a stable sort), so the same weights give the same masks on every run.
    """
    if not 0.0 <= sparsity < 1.0:
        raise TinymlError(f"magnitude sparsity must be in [0, 1), got {sparsity}")
    weights = prunable_weights(model)
    flat = torch.cat([w.detach().abs().flatten() for _, w in weights])
    n_zero = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_zero:
        order = torch.sort(flat, stable=True).indices
        keep[order[:n_zero]] = False
    masks, start = {}, 0
    for name, w in weights:
        masks[name] = keep[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].dtype))


def hold_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[torch.utils.hooks.RemovableHandle]:
    """Keep pruned weights at exactly zero during fine-tuning.

    Their gradients are masked, so Adam's moments for them stay zero and the update is exactly zero (weight
    decay of a zero weight is zero too); a forward pre-hook re-applies the mask anyway, whatever the
    optimizer does.
    Returns the hook handles (`.remove()` them to stop).
    """
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    handles = []
    for name, mask in masks.items():
        m = mask.to(params[name].dtype)
        handles.append(params[name].register_hook(lambda g, m=m: g * m.to(g.device)))
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules[name.rsplit(".", 1)[0]]
        m = mask.to(params[name].dtype)

        def remask(mod: nn.Module, _inputs: tuple, m: torch.Tensor = m) -> None:
            with torch.no_grad():
                mod.weight.mul_(m.to(mod.weight.device))  # the model may have moved to a GPU

        handles.append(module.register_forward_pre_hook(remask))
    return handles


def sparsity_report(model: nn.Module, params_folded: int | None = None) -> dict[str, int | float]:
    """Zero/nonzero prunable weight counts; with `params_folded`, the nonzero total of the folded model."""
    weights = prunable_weights(model)
    total = sum(w.numel() for _, w in weights)
    zeros = sum(int((w.detach() == 0).sum()) for _, w in weights)
    out: dict[str, int | float] = {
        "prunable_weights": total,
        "zero_weights": zeros,
        "weight_sparsity": zeros / total if total else 0.0,
    }
    if params_folded is not None:
        out["nonzero_params"] = params_folded - zeros
    return out
