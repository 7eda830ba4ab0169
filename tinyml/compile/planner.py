"""Static memory plan: every activation tensor gets an offset in one arena, from tensor lifetimes.

Greedy first-fit by decreasing size (like TFLM's greedy planner). RESHAPE outputs alias their inputs. The
model input and output live in the arena too (the firmware writes the input straight into it and reads the
output from it, so no separate I/O buffers exist): the input is alive from before the first layer, the output
until after the last. A layer may also declare that its output can overlap an input that dies with it
(in-place), given a minimum byte gap `in_offset - out_offset >= gap` its kernel is written for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tinyml.compile.ops import Layer
from tinyml.compile.tflite import TfliteModel

ALIGN = 4  # every tensor starts on a word boundary (word loads in kernels)


@dataclass(frozen=True)
class Buffer:
    """A group of tensors that share memory (a tensor plus the RESHAPEs of it)."""

    tensors: tuple[int, ...]
    size: int
    first: int  # index of the layer that produces it (-1: model input)
    last: int  # index of the last layer that reads it (len(layers): model output)
    where: str  # "arena" (every activation, the model input and output included)
    offset: int  # byte offset in the arena


@dataclass(frozen=True)
class MemoryPlan:
    buffers: tuple[Buffer, ...]
    of_tensor: dict[int, Buffer]
    arena_bytes: int
    lower_bound: (
        int  # max over layers of the arena bytes of inputs + output (+ scratch) of that layer, where an
    )
    # in-place input and its output count as their least overlapped span
    lower_bound_layer: int
    live_peak: int  # max over layers of the bytes of all arena buffers alive at that layer (no overlap)
    copies: frozenset[int]  # layer indices of RESHAPEs that must copy (input and output could not alias)
    scratch: dict[int, int]  # layer index -> arena offset of its kernel scratch
    input_tensor: int = -1
    output_tensor: int = -1
    input_preserved: bool = False  # nothing else is placed over the model input: it survives an invocation
    peak_layer: int = 0  # position of the layer at which the arena reaches its peak (first such)

    @property
    def input_offset(self) -> int:
        return self.of_tensor[self.input_tensor].offset

    @property
    def output_offset(self) -> int:
        return self.of_tensor[self.output_tensor].offset

    def expr(self, tensor: int, arena: str) -> str:
        """C expression of a tensor's address inside model_invoke."""
        b = self.of_tensor[tensor]
        return f"{arena} + {b.offset}" if b.offset else arena

    def table(self, model: TfliteModel) -> str:
        rows = [f"{'tensors':<14} {'bytes':>7} {'layers':>9}  {'place':<14} name"]
        for b in sorted(self.buffers, key=lambda b: (b.first, b.tensors)):
            place = f"arena+{b.offset}"
            name = model.tensors[b.tensors[-1]].name
            rows.append(
                f"{','.join(map(str, b.tensors)):<14} {b.size:>7} {b.first:>4}-{b.last:<4}  "
                f"{place:<14} {name[:60]}"
            )
        for i, off in sorted(self.scratch.items()):
            rows.append(f"{'scratch':<14} {'':>7} {i:>4}-{i:<4}  arena+{off:<8} kernel scratch of layer {i}")
        rows.append(
            f"arena peak {self.arena_bytes} B; lower bound {self.lower_bound} B "
            f"(max over layers of inputs + output + scratch, in-place pairs overlapped, layer "
            f"{self.lower_bound_layer}); without overlap all live tensors take {self.live_peak} B"
        )
        return "\n".join(rows)


def plan(layers: list[Layer], model: TfliteModel, tries: int = 100) -> MemoryPlan:
    """The memory plan; `tries` random placement orders beyond the three fixed ones (fewer: quicker)."""
    n = len(layers)
    m_in, m_out = model.inputs[0], model.outputs[0]
    parent: dict[int, int] = {}

    def find(t: int) -> int:
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t

    copies: set[int] = set()
    find(m_in), find(m_out)
    for layer in layers:
        for t in [*[a for a in layer.inputs if isinstance(a, int)], layer.output]:
            find(t)
        if layer.alias:
            parent[find(layer.output)] = find(layer.inputs[0])
    members: dict[int, list[int]] = {}
    for t in parent:
        members.setdefault(find(t), []).append(t)
    first = {g: (-1 if g == find(m_in) else n) for g in members}
    last = {g: (n if g == find(m_out) else -1) for g in members}
    for i, layer in enumerate(layers):
        g = find(layer.output)
        first[g] = min(first[g], i)
        for a in layer.inputs:
            if isinstance(a, int):
                last[find(a)] = max(last[find(a)], i)
    for g in members:  # an output nobody reads still needs its bytes while its layer runs
        last[g] = max(last[g], first[g])
    sizes = {g: max(model.tensors[t].nbytes for t in ts) for g, ts in members.items()}
    where = {g: "arena" for g in members}
    # in-place allowances: (output group, input group) -> minimum gap in_offset - out_offset
    gaps: dict[tuple[int, int], int] = {}
    for i, layer in enumerate(layers):
        for pos, gap in layer.inplace.items():
            src = layer.inputs[pos]
            if isinstance(src, int) and last[find(src)] == i:
                gaps[(find(layer.output), find(src))] = gap
    for i, layer in enumerate(layers):  # kernel scratch: alive only while its layer runs
        if layer.scratch_bytes:
            key = -1 - i
            sizes[key], first[key], last[key], where[key] = layer.scratch_bytes, i, i, "arena"
    offsets = _best_fit_order([g for g in where if where[g] == "arena"], sizes, first, last, gaps, tries)
    scratch = {-1 - key: off for key, off in offsets.items() if key < 0}
    buffers = {
        g: Buffer(tuple(sorted(members[g])), sizes[g], first[g], last[g], where[g], offsets.get(g, 0))
        for g in members
    }
    arena = max((offsets[g] + sizes[g] for g in offsets), default=0)
    bound, bound_layer = 0, 0
    for i, layer in enumerate(layers):
        out = find(layer.output)
        gs = {find(a) for a in layer.inputs if isinstance(a, int)} | {out}
        s = sum(sizes[g] for g in gs if where[g] == "arena") + layer.scratch_bytes
        for g in gs:  # an in-place input and the output only need their overlapped span
            gap = gaps.get((out, g))
            if gap is not None and where[g] == where[out] == "arena":
                span = max(sizes[g] + gap, sizes[out]) if gap >= 0 else max(sizes[g], sizes[out] - gap)
                s -= sizes[g] + sizes[out] - span
        if s > bound:
            bound, bound_layer = s, i
    live = max((sum(sizes[g] for g in offsets if first[g] <= i <= last[g]) for i in range(n)), default=0)
    top = [max((offsets[g] + sizes[g] for g in offsets if first[g] <= i <= last[g]), default=0)
           for i in range(n)]
    peak_layer = top.index(max(top)) if top else 0
    g_in = find(m_in)
    preserved = all(
        offsets[g] + sizes[g] <= offsets[g_in] or offsets[g_in] + sizes[g_in] <= offsets[g]
        for g in offsets
        if g != g_in
    )
    return MemoryPlan(
        tuple(buffers.values()),
        {t: buffers[find(t)] for t in parent},
        arena,
        bound,
        bound_layer,
        live,
        frozenset(copies),
        scratch,
        m_in,
        m_out,
        preserved,
        peak_layer,
    )


def _align(v: int) -> int:
    return (v + ALIGN - 1) // ALIGN * ALIGN


def _best_fit_order(
    groups: list[int],
    sizes: dict[int, int],
    first: dict[int, int],
    last: dict[int, int],
    gaps: dict[tuple[int, int], int],
    tries: int = 100,
) -> dict[int, int]:
    """First-fit in several placement orders; keep the smallest arena.

    Decreasing size (TFLM's order) is good without in-place layers, but a chain of in-place layers wants each
    input placed above its output, which execution order (or reversed execution order) gives. Seeded random
    orders cover the rest; plans are cheap (tens of tensors), and the result is deterministic."""
    orders = [
        sorted(groups, key=lambda g: (-sizes[g], first[g], g)),
        sorted(groups, key=lambda g: (first[g], -sizes[g], g)),
        sorted(groups, key=lambda g: (-first[g], -sizes[g], g)),
    ]
    rng = random.Random(0)
    for _ in range(tries):
        order = list(orders[0])
        rng.shuffle(order)
        orders.append(order)
    best: dict[int, int] = {}
    best_peak = None
    for order in orders:
        placed = _first_fit(order, sizes, first, last, gaps)
        peak = max((placed[g] + sizes[g] for g in placed), default=0)
        if best_peak is None or peak < best_peak:
            best, best_peak = placed, peak
    return best


def _first_fit(
    order: list[int],
    sizes: dict[int, int],
    first: dict[int, int],
    last: dict[int, int],
    gaps: dict[tuple[int, int], int],
) -> dict[int, int]:
    placed: dict[int, int] = {}
    for g in order:
        others = [h for h in placed if first[h] <= last[g] and first[g] <= last[h]]
        cands = {0} | {_align(placed[h] + sizes[h]) for h in others}
        for h in others:
            if (g, h) in gaps:  # g is the output of a layer that may overwrite input h from gap bytes below
                cands.add(max(0, (placed[h] - gaps[(g, h)]) // ALIGN * ALIGN))
            if (h, g) in gaps:
                cands.add(max(0, _align(placed[h] + gaps[(h, g)])))
        for off in sorted(cands):
            if all(_compatible(g, off, h, placed[h], sizes, gaps) for h in others):
                placed[g] = off
                break
    return placed


def _compatible(
    g: int, off: int, h: int, hoff: int, sizes: dict[int, int], gaps: dict[tuple[int, int], int]
) -> bool:
    if off + sizes[g] <= hoff or hoff + sizes[h] <= off:
        return True
    if (g, h) in gaps:
        return hoff - off >= gaps[(g, h)]
    if (h, g) in gaps:
        return off - hoff >= gaps[(h, g)]
    return False


# ---- compile-time bounds check: what each kernel will read and write, from the params it is given ----


def _prod(v) -> int:
    out = 1
    for d in v:
        out *= int(d)
    return out


def _extents(layer: Layer) -> tuple[list[int], int]:
    """(bytes read from each data input, bytes written) by the layer's kernel, computed from its params
    alone (not from the tensors): a params struct that disagrees with the tensors is caught before any C."""
    p = dict(layer.params)
    n_in = len(layer.inputs)
    if layer.kernel == "":  # RESHAPE: aliases or copies its input
        return [-1] * n_in, -1
    if layer.params_type in ("conv2d_params_t", "depthwise_conv2d_params_t"):
        return [_prod((p["in_h"], p["in_w"], p["in_c"]))], _prod((p["out_h"], p["out_w"], p["out_c"]))
    if layer.params_type == "pool2d_params_t":
        return [_prod((p["in_h"], p["in_w"], p["ch"]))], _prod((p["out_h"], p["out_w"], p["ch"]))
    if layer.params_type == "fully_connected_params_t":
        return [p["batches"] * p["in_depth"]], p["batches"] * p["out_depth"]
    if layer.params_type == "mean_params_t":
        return [p["outer"] * p["n"] * p["inner"]], p["outer"] * p["inner"]
    if layer.params_type == "softmax_params_t":
        return [p["rows"] * p["depth"]], p["rows"] * p["depth"]
    if layer.params_type == "pad_params_t":
        return [_prod(p["in_dims"])], _prod(p["out_dims"])
    if layer.params_type == "add_params_t":
        reads = []
        for key in ("in1_strides", "in2_strides"):
            if p["broadcast"]:
                reads.append(1 + sum((d - 1) * s for d, s in zip(p["out_dims"], p[key], strict=True)))
            else:
                reads.append(p["size"])
        return reads, p["size"]
    raise AssertionError(f"no bounds rule for {layer.params_type}")


def bounds_error(model: TfliteModel, layer: Layer, msg: str):
    """The error of a plan that would read or write out of bounds: a compiler bug, never a user's."""
    from tinyml.errors import TinymlError

    return TinymlError(
        f"{model.path}: op {layer.index} ({layer.op}): internal compiler error (please report): {msg}"
    )


def check_bounds(layers: list[Layer], plan_: MemoryPlan, model: TfliteModel, extents_from: int = 0) -> None:
    """Every kernel's reads and writes stay inside its buffers, and no two arena buffers alive together share
    bytes except an in-place pair at its kernel's gap: raised as an internal error (a compiler bug, never a
    user's) before any C is written, so a bad plan can never become an out-of-bounds write on a device.
    extents_from: the first layer whose kernel extents are checked here (a patch stage checks its own bands,
    patch.check_plan)."""
    from tinyml.errors import TinymlError

    def fail(layer: Layer, msg: str) -> TinymlError:
        return bounds_error(model, layer, msg)

    for layer in layers[extents_from:]:
        consts = {c.name: c.values.size if not c.rows else len(c.rows) for c in layer.consts}
        reads, writes = _extents(layer)
        out = model.tensors[layer.output]
        if writes not in (-1, out.nbytes):
            raise fail(layer, f"the kernel writes {writes} bytes, tensor {out.index} holds {out.nbytes}")
        for a, n in zip(layer.inputs, reads, strict=True):
            have = consts.get(a.name, 0) if not isinstance(a, int) else model.tensors[a].nbytes
            if n > have or (n == -1 and have != out.nbytes):
                raise fail(layer, f"the kernel reads {n} bytes of input {a}, which holds {have}")
    arena = [b for b in plan_.buffers if b.where == "arena"]
    for i, layer in enumerate(layers):
        off = plan_.scratch.get(i)
        if off is None:
            continue
        end = off + layer.scratch_bytes
        if end > plan_.arena_bytes or any(
            b.first <= i <= b.last and b.offset < end and off < b.offset + b.size for b in arena
        ):
            raise fail(layer, f"its scratch [{off}, {end}) overlaps a live tensor or leaves the arena")
    gaps = {}
    for layer in layers:
        for pos, gap in layer.inplace.items():
            gaps[(id(plan_.of_tensor[layer.output]), id(plan_.of_tensor[layer.inputs[pos]]))] = gap
    for i, a in enumerate(arena):
        if a.offset < 0 or a.offset + a.size > plan_.arena_bytes:
            raise TinymlError(f"{model.path}: internal compiler error: tensor {a.tensors} outside the arena")
        for b in arena[i + 1 :]:
            live = a.first <= b.last and b.first <= a.last
            if not live or a.offset + a.size <= b.offset or b.offset + b.size <= a.offset:
                continue
            out, inp = (a, b) if (id(a), id(b)) in gaps else (b, a)
            gap = gaps.get((id(out), id(inp)))
            if gap is None or inp.offset - out.offset < gap:
                raise TinymlError(
                    f"{model.path}: internal compiler error: tensors {a.tensors} and {b.tensors} share arena "
                    f"bytes while both are alive"
                )
