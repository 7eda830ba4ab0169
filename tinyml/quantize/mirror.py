"""Mirror a PyTorch layer chain in Keras and copy its weights, so TensorFlow's converter can quantize it.

Why a mirror and not a generic torch->TFLite converter: those add TRANSPOSE/PAD ops or stay float (USERS.md).
Our models are a pure chain of a dozen primitives, so each maps to exactly one Keras layer (or to nothing),
the Keras graph is NHWC from the start, and the converter emits only the ops a microcontroller kernel set has.

Layout rules (torch is NCHW, Keras NHWC):
- conv weight (O, I, kh, kw) -> (kh, kw, I, O); depthwise (C*m, 1, kh, kw) -> (kh, kw, C, m);
- a ZeroPad2d before a conv is folded into the conv's padding; the result must equal TF "same" (pads
  bottom/right first) or "valid", otherwise a PAD op would appear and we refuse;
- Flatten of a C x H x W map orders features (c, h, w) in torch and (h, w, c) in Keras: the next Linear's
  input columns are permuted instead of inserting a TRANSPOSE.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import torch
from torch import nn

from tinyml.errors import TinymlError

# Mirror vs torch outputs (both float64) above this are a bug in the mirror, not rounding (~1e-12 when right).
MIRROR_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Mirror:
    """The Keras twin of a torch chain: `model` ends in softmax (what gets converted), `logits` shares its
    layers but stops before the softmax (what is compared with torch)."""

    model: keras.Model
    logits: keras.Model
    torch_names: tuple[str, ...]  # torch module name per mirrored Keras layer, for error messages
    torch_has_softmax: bool  # the torch chain ends in nn.Softmax: compare probabilities, not logits


@dataclass
class _State:
    """Shape of the running tensor while walking the chain (NHWC for 4-D maps) and pending layout fixes."""

    shape: tuple[int, ...]  # without batch: (H, W, C) or (F,)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # pending ZeroPad2d: top, bottom, left, right
    pad_name: str = ""
    flatten_chw: tuple[int, int, int] | None = None  # set after Flatten of a C,H,W map with H*W > 1
    dtype: str = "float32"


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same': output ceil(size/stride); the odd pixel of padding goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv_padding(name: str, mod: nn.Conv2d, st: _State) -> str:
    """Fold the pending ZeroPad2d and the conv's own padding into Keras 'valid' or 'same', or refuse."""
    if mod.padding_mode != "zeros":
        raise TinymlError(f"layer {name}: padding_mode={mod.padding_mode!r} cannot be converted (zeros only)")
    if isinstance(mod.padding, str):
        raise TinymlError(f"layer {name}: padding={mod.padding!r}: use an integer padding or ZeroPad2d")
    ph, pw = _pair(mod.padding)
    top, bottom, left, right = st.pad[0] + ph, st.pad[1] + ph, st.pad[2] + pw, st.pad[3] + pw
    if (top, bottom, left, right) == (0, 0, 0, 0):
        return "valid"
    (kh, kw), (sh, sw) = _pair(mod.kernel_size), _pair(mod.stride)
    h, w = st.shape[0] - st.pad[0] - st.pad[1], st.shape[1] - st.pad[2] - st.pad[3]
    if (top, bottom) == _tf_same_padding(h, kh, sh) and (left, right) == _tf_same_padding(w, kw, sw):
        return "same"
    where = f"{st.pad_name} + {name}" if st.pad_name else name
    raise TinymlError(f"layer {where}: padding (top {top}, bottom {bottom}, left {left}, right {right}) on a "
                      f"{h}x{w} input is not TF 'same' for kernel {kh}x{kw} stride {sh}x{sw}; it would need "
                      "a PAD op (pad stride-2 layers with ZeroPad2d((0, 1, 0, 1)) and padding=0)")


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().astype(np.float64)


def _conv(name: str, mod: nn.Conv2d, st: _State) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    if _pair(mod.dilation) != (1, 1):
        raise TinymlError(f"layer {name}: dilation {mod.dilation} is not supported (1 only)")
    padding = _conv_padding(name, mod, st)
    cin, cout, groups = mod.in_channels, mod.out_channels, mod.groups
    weight, bias = _np(mod.weight), _np(mod.bias)
    common = dict(kernel_size=_pair(mod.kernel_size), strides=_pair(mod.stride), padding=padding,
                  use_bias=bias is not None, **_kw(name, st))
    if groups == 1:
        layer = keras.layers.Conv2D(cout, **common)
        weights = [weight.transpose(2, 3, 1, 0)]
    elif groups == cin and cout % cin == 0:
        mult = cout // cin
        layer = keras.layers.DepthwiseConv2D(depth_multiplier=mult, **common)
        # torch output channel o is group o // mult: (C*m, 1, kh, kw) -> (C, m, kh, kw) -> (kh, kw, C, m)
        kh, kw = weight.shape[2:]
        weights = [weight.reshape(cin, mult, kh, kw).transpose(2, 3, 0, 1)]
    else:
        raise TinymlError(f"layer {name}: grouped convolution with groups={groups} (in {cin}, out {cout}) is "
                          "not supported; only groups=1 or depthwise (groups=in_channels)")
    if bias is not None:
        weights.append(bias)
    return layer, weights


def _batchnorm(name: str, mod: nn.BatchNorm2d, st: _State) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    if mod.running_mean is None or mod.running_var is None:
        raise TinymlError(f"layer {name}: BatchNorm2d without running statistics cannot be converted")
    c = mod.num_features
    gamma = _np(mod.weight) if mod.affine else np.ones(c)
    beta = _np(mod.bias) if mod.affine else np.zeros(c)
    layer = keras.layers.BatchNormalization(epsilon=float(mod.eps), **_kw(name, st))
    return layer, [gamma, beta, _np(mod.running_mean), _np(mod.running_var)]


def _linear(name: str, mod: nn.Linear, st: _State) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    if len(st.shape) != 1:
        raise TinymlError(f"layer {name}: Linear on a {len(st.shape) + 1}-D tensor; add a Flatten before it")
    weight, bias = _np(mod.weight), _np(mod.bias)  # (out, in)
    if st.flatten_chw is not None:
        c, h, w = st.flatten_chw
        # Keras feature (h, w, c) is torch feature c*h*w-index: reorder columns instead of adding a TRANSPOSE.
        weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
        st.flatten_chw = None
    layer = keras.layers.Dense(mod.out_features, use_bias=bias is not None, **_kw(name, st))
    return layer, [weight.T.copy()] + ([bias] if bias is not None else [])


def _avgpool(name: str, mod: nn.AvgPool2d, st: _State) -> keras.layers.Layer:
    if _pair(mod.padding) != (0, 0) or mod.ceil_mode:
        raise TinymlError(f"layer {name}: AvgPool2d with padding or ceil_mode is not supported")
    k = _pair(mod.kernel_size)
    s = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
    return keras.layers.AveragePooling2D(pool_size=k, strides=s, padding="valid", **_kw(name, st))


def _global_pool(name: str, mod: nn.AdaptiveAvgPool2d, st: _State) -> keras.layers.Layer:
    if _pair(mod.output_size) != (1, 1):
        raise TinymlError(f"layer {name}: AdaptiveAvgPool2d({mod.output_size}) is not supported (1 only)")
    # A pool over the whole map converts to AVERAGE_POOL_2D (as in person_detect), not to MEAN.
    return keras.layers.AveragePooling2D(pool_size=st.shape[:2], padding="valid", **_kw(name, st))


def _kw(name: str, st: _State) -> dict[str, str]:
    """Keras layer name (from the torch module name, so converter errors point at it) and dtype."""
    return {"name": "t_" + (name.replace(".", "_") or "root"), "dtype": st.dtype}


def _shape_after(layer: keras.layers.Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(d) for d in layer.compute_output_shape((1, *shape))[1:])


def build_mirror(layers: Sequence[tuple[str, nn.Module]], input_shape_hwc: tuple[int, int, int],
                 dtype: str = "float32") -> Mirror:
    """Keras model computing the same function as the torch chain `layers` (name, leaf module) in eval mode.

    The Keras input is NHWC float with batch size fixed to 1 (a free batch adds SHAPE/STRIDED_SLICE ops).
    A final softmax is appended unless the chain already ends in one. `dtype="float64"` builds the twin
    used to check the mirror's math (see `mirror_max_abs_diff`).
    """
    inputs = keras.Input(shape=input_shape_hwc, batch_size=1, name="input", dtype=dtype)
    x = inputs
    st = _State(shape=tuple(input_shape_hwc), dtype=dtype)
    names: list[str] = []
    pending: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    ends_in_softmax = False
    for name, mod in layers:
        if st.pad != (0, 0, 0, 0) and not isinstance(mod, nn.Conv2d):
            raise TinymlError(f"layer {st.pad_name}: ZeroPad2d must be followed by a Conv2d, got "
                              f"{type(mod).__name__} ({name}); a lone pad becomes a PAD op")
        if ends_in_softmax:
            raise TinymlError(f"layer {name}: layers after the Softmax cannot be converted")
        layer, weights = None, []
        if isinstance(mod, nn.ZeroPad2d):
            left, right, top, bottom = (int(p) for p in mod.padding)
            st.pad, st.pad_name = (top, bottom, left, right), name
            st.shape = (st.shape[0] + top + bottom, st.shape[1] + left + right, st.shape[2])
            continue
        if isinstance(mod, nn.Conv2d):
            layer, weights = _conv(name, mod, st)
            st.shape = (st.shape[0] - st.pad[0] - st.pad[1], st.shape[1] - st.pad[2] - st.pad[3], st.shape[2])
            st.pad, st.pad_name = (0, 0, 0, 0), ""
        elif isinstance(mod, nn.BatchNorm2d):
            layer, weights = _batchnorm(name, mod, st)
        elif isinstance(mod, nn.ReLU):
            layer = keras.layers.ReLU(**_kw(name, st))
        elif isinstance(mod, nn.ReLU6):
            layer = keras.layers.ReLU(max_value=6.0, **_kw(name, st))
        elif isinstance(mod, nn.AvgPool2d):
            layer = _avgpool(name, mod, st)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            layer = _global_pool(name, mod, st)
        elif isinstance(mod, nn.Flatten):
            if len(st.shape) == 3 and st.shape[0] * st.shape[1] > 1:
                st.flatten_chw = (st.shape[2], st.shape[0], st.shape[1])
            layer = keras.layers.Flatten(**_kw(name, st))
        elif isinstance(mod, nn.Linear):
            layer, weights = _linear(name, mod, st)
        elif isinstance(mod, (nn.Dropout, nn.Identity)):
            continue  # inference: identity
        elif isinstance(mod, nn.Softmax):
            ends_in_softmax = True
            continue
        else:
            raise TinymlError(f"layer {name}: {type(mod).__name__} cannot be converted to int8 TFLite; "
                              "supported: ZeroPad2d, Conv2d, BatchNorm2d, ReLU, ReLU6, AvgPool2d, "
                              "AdaptiveAvgPool2d(1), Flatten, Linear, Dropout")
        x = layer(x)
        st.shape = _shape_after(layer, st.shape) if not isinstance(layer, keras.layers.Flatten) else (
            int(np.prod(st.shape)),)
        names.append(name)
        if weights:
            pending.append((layer, weights))
    if st.pad != (0, 0, 0, 0):
        raise TinymlError(f"layer {st.pad_name}: ZeroPad2d at the end of the model cannot be converted")
    if len(st.shape) != 1:
        raise TinymlError(f"the model ends in a {st.shape} map, not a vector of class scores; end with "
                          "a global pool, Flatten and Linear")
    for layer, weights in pending:
        _set_weights(layer, [w.astype(dtype) for w in weights])
    logits = keras.Model(inputs, x, name="logits")
    probs = keras.layers.Softmax(name="softmax", dtype=dtype)(x)
    return Mirror(model=keras.Model(inputs, probs, name="tinyml"), logits=logits, torch_names=tuple(names),
                  torch_has_softmax=ends_in_softmax)


def _set_weights(layer: keras.layers.Layer, weights: list[np.ndarray]) -> None:
    """Copy with shape asserts: a silently broadcast weight would only show up as lost accuracy."""
    expected = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(w.shape) for w in weights]
    if expected != got:
        raise AssertionError(f"{layer.name}: Keras expects weights {expected}, mirror produced {got}")
    layer.set_weights(weights)


def mirror_max_abs_diff(torch_model: nn.Module, mirror: Mirror, images_u8: np.ndarray) -> float:
    """Largest |torch - keras| over the logits of `images_u8` (N, H, W, C uint8), both fed uint8/255.

    Both sides run in the mirror's dtype. In float32 the two frameworks' summation orders drift apart by
    ~1e-5 relative per layer through a trained MobileNet (~1e-4 at the logits), which would hide a small
    mirror bug or fail a correct one; in float64 a correct mirror agrees to ~1e-12.
    """
    if len(images_u8) == 0:
        return 0.0
    dtype = np.dtype(mirror.model.inputs[0].dtype)
    x = images_u8.astype(dtype) / 255.0
    twin = copy.deepcopy(torch_model).to(torch.float64 if dtype == np.float64 else torch.float32).eval()
    with torch.no_grad():
        ref = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    keras_model = mirror.model if mirror.torch_has_softmax else mirror.logits
    # The Input declares batch 1 (for the converter); eager calls still take a whole batch, 10x faster.
    got = np.concatenate([np.asarray(keras_model(x[i:i + 64], training=False)) for i in range(0, len(x), 64)])
    if got.shape != ref.shape:
        raise AssertionError(f"mirror output shape {got.shape} != torch {ref.shape}")
    return float(np.max(np.abs(got - ref)))
