"""Patch-based inference: the leading high-resolution layers run band by band, so their full-size activations
never exist (MCUNetV2's idea, in row bands).

The stage is the model's first S layers when they are a chain of convolutions / depthwise convolutions. Its
output tensor is split into n bands of rows; for each band, every stage layer computes only the rows the next
one needs (the receptive-field halo, recomputed by neighbouring bands), into two small ping-pong buffers, and
the last writes its rows straight into the full stage output. The kernels are the same: each band gets its own
params (rows in, rows out, top padding), and a band touching the image border keeps the border's padding, so
every value is the same integer computation as unpatched - bit-exact with TFLM. Rows are whole (full width),
so a band of the model input or the stage output is contiguous: nothing is gathered or copied.

The compiler picks S and n (`auto`) minimising the planned arena within an instruction overhead budget
(estimated from the recomputed MACs and the per-call cost of a kernel), or takes n from `--patch N`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinyml.compile.ops import Layer
from tinyml.compile.tflite import TfliteModel
from tinyml.errors import UsageError

PATCH_OPS = {"conv2d_params_t", "depthwise_conv2d_params_t"}
# The default of every command (compile, export, bench, sweep): measured on both reference models, auto lowers
# the linked RAM by 13.2 KB / 3.8 KB for +3.0% / +9.8% instructions on the M4 (at most +11.5%, vww on the M0),
# bit-exact on every emulated board (docs/guide.md, make bench-boards).
DEFAULT_SETTING = "auto"
DEFAULT_OVERHEAD = 0.15
# The overhead estimate, calibrated on the emulated Cortex-M4 (person_detect 6 bands: +2.9%,
# vww_96_int8 24 bands: +21.1% measured): a model costs ~1.55 instructions per MAC; a recomputed halo MAC
# ~2.1 (the early layers' kernels are the costlier ones); every extra kernel call ~6,100 (channel tables,
# row setup). Rounded up.
INSTR_PER_MAC = 1.55
HALO_INSTR_PER_MAC = 2.2
CALL_INSTR = 6500
MAX_STAGE = 8


@dataclass(frozen=True)
class BandLayer:
    out_rows: tuple[int, int]  # [a, b) of the layer's output
    in_rows: tuple[int, int]  # [g0, g1) of its input
    pad_top: int  # relative top padding


@dataclass(frozen=True)
class PatchPlan:
    stage: int  # number of leading layers run in bands
    bands: tuple[tuple[BandLayer, ...], ...]  # per band, per stage layer
    buf_bytes: tuple[int, int]  # the two ping-pong buffers
    kscratch: int  # kernel scratch of the stage (the largest)
    extra_macs: int  # MACs recomputed in the halos
    est_overhead: float  # estimated extra instructions / the unpatched model's

    @property
    def n(self) -> int:
        return len(self.bands)

    @property
    def scratch_bytes(self) -> int:
        return self.buf_bytes[0] + self.buf_bytes[1] + self.kscratch

    def describe(self) -> str:
        return (
            f"patches: the first {self.stage} layers in {self.n} row bands (buffers {self.buf_bytes[0]:,} + "
            f"{self.buf_bytes[1]:,} B, kernel scratch {self.kscratch:,} B), {self.extra_macs:,} MACs "
            f"recomputed in halos, est. +{self.est_overhead:.1%} instructions"
        )


def _p(la: Layer, key: str) -> int:
    return int(dict(la.params)[key])


def stage_limit(layers: list[Layer], model: TfliteModel) -> int:
    """How many leading layers may form a stage: a chain of (depthwise) convolutions, each read by the next
    one only."""
    readers: dict[int, int] = {}
    for la in layers:
        for a in la.inputs:
            if isinstance(a, int):
                readers[a] = readers.get(a, 0) + 1
    s, prev = 0, model.inputs[0]
    for la in layers[:MAX_STAGE]:
        acts = [a for a in la.inputs if isinstance(a, int)]
        if la.params_type not in PATCH_OPS or acts != [prev]:
            break
        if readers.get(la.output, 0) != 1:
            s += 1
            break
        s, prev = s + 1, la.output
    return s


def make_plan(layers: list[Layer], stage: int, n: int, total_macs: int) -> PatchPlan:
    """Row bands for the first `stage` layers split into n bands of the stage output."""
    last = layers[stage - 1]
    h = _p(last, "out_h")
    bounds = [round(i * h / n) for i in range(n + 1)]
    bands = []
    for k in range(n):
        a, b = bounds[k], bounds[k + 1]
        per: list[BandLayer] = []
        for la in reversed(layers[:stage]):
            s, kh, d, pad, ih = (_p(la, x) for x in ("stride_h", "k_h", "dil_h", "pad_top", "in_h"))
            lo, hi = a * s - pad, (b - 1) * s - pad + (kh - 1) * d + 1
            g0, g1 = max(0, lo), min(ih, hi)
            per.append(BandLayer((a, b), (g0, g1), g0 - lo))
            a, b = g0, g1
        bands.append(tuple(reversed(per)))
    bufs = [0, 0]
    for band in bands:
        for j, bl in enumerate(band[:-1]):
            la = layers[j]
            nbytes = (bl.out_rows[1] - bl.out_rows[0]) * _p(la, "out_w") * _p(la, "out_c")
            bufs[j % 2] = max(bufs[j % 2], (nbytes + 3) // 4 * 4)
    extra = 0
    calls = 0
    for j, la in enumerate(layers[:stage]):
        rows = sum(band[j].out_rows[1] - band[j].out_rows[0] for band in bands)
        extra += la.macs * rows // _p(la, "out_h") - la.macs
        calls += (n - 1) * CALL_INSTR
    kscratch = max(la.scratch_bytes for la in layers[:stage])
    overhead = (extra * HALO_INSTR_PER_MAC + calls) / max(1, total_macs * INSTR_PER_MAC)
    return PatchPlan(stage, tuple(bands), (bufs[0], bufs[1]), (kscratch + 3) // 4 * 4, extra, overhead)


def stage_gap(layers: list[Layer], p: PatchPlan) -> int:
    """Least `in_offset - out_offset` at which the stage output may overlap the model input: band k writes its
    output rows only after reading its input rows, so its writes must stay below the rows later bands read."""
    r_in = _p(layers[0], "in_w") * _p(layers[0], "in_c")
    r_out = _p(layers[p.stage - 1], "out_w") * _p(layers[p.stage - 1], "out_c")
    # a one-layer stage reads the input and writes the output in the same call: its band's own rows count
    own = 0 if p.stage == 1 else 1
    gap = -(1 << 30)
    for k in range(p.n - own):
        end = p.bands[k][-1].out_rows[1] * r_out
        nxt = p.bands[k + own][0].in_rows[0] * r_in
        gap = max(gap, end - nxt)
    return gap


def stage_layer(layers: list[Layer], model: TfliteModel, p: PatchPlan) -> Layer:
    """The stage as one layer for the memory planner: reads the model input, writes the stage output (over
    the input rows no later band needs, see stage_gap), and needs the band buffers and kernel scratch."""
    return replace(layers[p.stage - 1], inputs=(model.inputs[0],), inplace={0: stage_gap(layers, p)},
                   scratch_bytes=p.scratch_bytes)


def planning_layers(layers: list[Layer], model: TfliteModel, p: PatchPlan | None) -> list[Layer]:
    return list(layers) if p is None else [stage_layer(layers, model, p), *layers[p.stage:]]


def check_plan(layers: list[Layer], model: TfliteModel, p: PatchPlan, plan) -> None:
    """A patched plan passes the same bounds check as an unpatched one: the stage's place in the arena (its
    band buffers and kernel scratch as the stage's scratch, its output over the input at the stage gap), and
    per band and layer: rows inside the tensor, each layer's input rows exactly what the previous one wrote,
    the halo and top padding the layer's geometry needs, every band's rows within its ping-pong buffer, and
    the last layer's bands covering the stage output once. Raises an internal compiler error otherwise."""
    from tinyml.compile import planner

    planner.check_bounds(planning_layers(layers, model, p), plan, model, extents_from=1)
    stage = layers[: p.stage]

    def fail(la: Layer, k: int, msg: str):
        return planner.bounds_error(model, la, f"patch band {k}: {msg}")

    if plan.scratch.get(0) is None and p.scratch_bytes or p.kscratch < max(la.scratch_bytes for la in stage):
        raise fail(stage[0], 0, "the stage's band buffers and kernel scratch have no room in the arena")
    covered = 0
    for k, band in enumerate(p.bands):
        if len(band) != p.stage:
            raise fail(stage[0], k, f"{len(band)} layers in the band, the stage has {p.stage}")
        for j, (la, bl) in enumerate(zip(stage, band, strict=True)):
            _check_band_layer(la, bl, band[j - 1].out_rows if j else None, fail, k)
            if j < p.stage - 1:
                need = (bl.out_rows[1] - bl.out_rows[0]) * _p(la, "out_w") * _p(la, "out_c")
                if need > p.buf_bytes[j % 2]:
                    raise fail(la, k, f"writes {need} B into band buffer {j % 2} of {p.buf_bytes[j % 2]} B")
        if band[-1].out_rows[0] != covered:
            raise fail(stage[-1], k, f"output rows start at {band[-1].out_rows[0]}, not {covered}")
        covered = band[-1].out_rows[1]
    if covered != _p(stage[-1], "out_h"):
        raise fail(stage[-1], p.n - 1, f"the bands cover {covered} of {_p(stage[-1], 'out_h')} output rows")


def _check_band_layer(la: Layer, bl: BandLayer, prev: tuple[int, int] | None, fail, k: int) -> None:
    """One layer of one band: its rows inside its tensors, its input what it needs and what was written."""
    (a, b), (g0, g1) = bl.out_rows, bl.in_rows
    s, kh, d, pad, ih = (_p(la, x) for x in ("stride_h", "k_h", "dil_h", "pad_top", "in_h"))
    if not (0 <= a < b <= _p(la, "out_h") and 0 <= g0 < g1 <= ih):
        raise fail(la, k, f"rows out [{a}, {b}) / in [{g0}, {g1}) leave the tensors")
    lo, hi = a * s - pad, (b - 1) * s - pad + (kh - 1) * d + 1
    if (g0, g1, bl.pad_top) != (max(0, lo), min(ih, hi), max(0, lo) - lo):
        raise fail(la, k, f"input rows [{g0}, {g1}) with top padding {bl.pad_top} are not the rows output "
                          f"rows [{a}, {b}) need")
    if prev is not None and prev != (g0, g1):
        raise fail(la, k, f"reads rows [{g0}, {g1}), the previous layer wrote [{prev[0]}, {prev[1]})")


def parse_setting(setting: str | int | None) -> str | int:
    """'auto', 'off' or a band count (int >= 2); anything else is one clear error."""
    if setting is None or setting in ("off", "auto"):
        return setting or "off"
    try:
        n = int(setting)
    except (TypeError, ValueError):
        raise UsageError(f"--patch {setting!r}: expected auto, off or a number of bands (>= 2)") from None
    if n < 2:
        raise UsageError(f"--patch {n}: a patch setting needs at least 2 bands (or use off)")
    return n


def choose(layers: list[Layer], model: TfliteModel, setting: str | int | None, overhead: float,
           arena_of) -> PatchPlan | None:
    """The patch plan for `setting`: None for off (or when no stage lowers the arena under auto).

    arena_of(plan_or_None) -> the planned arena bytes; the choice minimises it, then the overhead."""
    setting = parse_setting(setting)
    if setting == "off":
        return None
    if overhead < 0:
        raise UsageError(f"--patch-overhead {overhead}: must be >= 0 (a fraction, 0.15 = 15%)")
    limit = stage_limit(layers, model)
    total = sum(la.macs for la in layers)
    if limit == 0:
        if setting == "auto":
            return None
        la = layers[0]
        raise UsageError(
            f"--patch {setting}: the model's first layer (op {la.index}, {la.op}) is not a convolution "
            "reading the model input, so there is no high-resolution stage to run in patches"
        )
    if isinstance(setting, int):
        h_max = max(_p(layers[s - 1], "out_h") for s in range(1, limit + 1))
        if setting > h_max:
            raise UsageError(
                f"--patch {setting}: more bands than rows: the stage's outputs have at most {h_max} rows"
            )
        cands = [make_plan(layers, s, setting, total) for s in range(1, limit + 1)
                 if setting <= _p(layers[s - 1], "out_h")]
        return min(cands, key=lambda p: (arena_of(p), p.est_overhead))
    best, best_key = None, (arena_of(None), 0.0)
    for s in range(1, limit + 1):
        h = _p(layers[s - 1], "out_h")
        for n in sorted({2, 3, 4, 6, 8, 12, 16, 24, h // 2, h} - {0, 1}):
            if n > h:
                continue
            p = make_plan(layers, s, n, total)
            if p.est_overhead > overhead:
                continue
            key = (arena_of(p), p.est_overhead)
            if key < best_key:
                best, best_key = p, key
    return best


def stage_name(layers: list[Layer], p: PatchPlan) -> str:
    """'layers 0-3 (patched, 6 bands)': how reports name the stage (it runs, and is timed, as one unit)."""
    return f"{span(layers[0].index, layers[p.stage - 1].index)} (patched, {p.n} bands)"


def span(first: int, last: int) -> str:
    return f"layer {first}" if first == last else f"layers {first}-{last}"


def report(c) -> dict:
    """The patch choice of a Compiled, JSON-ready: what was asked, what was chosen, what it saves, costs."""
    p, off = c.patch, c.plan_off or c.plan
    return {
        "setting": str(c.patch_setting),
        "overhead_budget": c.patch_overhead,
        "stage_layers": [la.index for la in c.layers[: p.stage]] if p else [],
        "bands": p.n if p else 0,
        "arena_bytes": c.plan.arena_bytes,
        "arena_bytes_off": off.arena_bytes,
        "est_overhead": p.est_overhead if p else 0.0,
    }


def report_line(doc: dict) -> str:
    """One line from report(): 'patches: auto -> layers 0-3 in 6 row bands, arena X B vs Y B off, ...'."""
    setting, arena, off = doc["setting"], doc["arena_bytes"], doc["arena_bytes_off"]
    if doc["bands"]:
        layers = span(doc["stage_layers"][0], doc["stage_layers"][-1])
        return (f"patches: {setting} -> {layers} in {doc['bands']} row bands, arena {arena:,} B "
                f"vs {off:,} B off, est. +{doc['est_overhead']:.1%} instructions")
    if setting == "off":
        return f"patches: off, arena {arena:,} B"
    return (f"patches: {setting} -> none (no split lowers the arena within est. "
            f"+{doc['overhead_budget']:.0%} instructions), arena {arena:,} B")


def add_arguments(p, default: str = DEFAULT_SETTING) -> None:
    """--patch and --patch-overhead, shared by compile, export, bench and sweep."""
    p.add_argument(
        "--patch",
        default=default,
        metavar="auto|off|N",
        help="run the leading high-resolution layers in N row bands (auto: the split and band count that "
        f"minimise the arena within --patch-overhead, or none if no split lowers it; default {default})",
    )
    p.add_argument(
        "--patch-overhead",
        type=float,
        default=DEFAULT_OVERHEAD,
        metavar="FRACTION",
        help=f"most extra instructions --patch auto may spend, estimated (default {DEFAULT_OVERHEAD})",
    )
