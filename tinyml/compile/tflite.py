"""Parse a .tflite flatbuffer into plain tensors and operators (no TensorFlow import).

Only what the compiler needs: shapes, types, quantization, constant data, op codes, op inputs/outputs and the
raw options table (each op class reads its own options, see ops.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from tinyml.compile.flatbuf import Malformed, Table, root
from tinyml.errors import TinymlError

# TensorType enum of the TFLite schema -> numpy dtype name (None: no numpy equivalent we handle).
TENSOR_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("float32", "float32"),
    1: ("float16", "float16"),
    2: ("int32", "int32"),
    3: ("uint8", "uint8"),
    4: ("int64", "int64"),
    5: ("string", None),
    6: ("bool", "bool"),
    7: ("int16", "int16"),
    8: ("complex64", None),
    9: ("int8", "int8"),
    10: ("float64", "float64"),
    11: ("complex128", None),
    12: ("uint64", "uint64"),
    13: ("resource", None),
    14: ("variant", None),
    15: ("uint32", "uint32"),
    16: ("uint16", "uint16"),
    17: ("int4", None),
}


@dataclass(frozen=True)
class Quant:
    scale: np.ndarray  # float32, one per channel (or one)
    zero_point: np.ndarray  # int64
    dim: int  # quantized_dimension


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # schema type name: "int8", "int32", "float32", ...
    data: bytes | None  # constant contents, None for activations
    quant: Quant | None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def array(self) -> np.ndarray:
        """Constant contents as an array of the tensor's shape."""
        if self.data is None:
            raise TinymlError(f"tensor {self.index} ('{self.name}') is not a constant")
        dt = np.dtype(self.dtype)
        a = np.frombuffer(self.data, dtype=dt, count=len(self.data) // dt.itemsize)
        if a.size != self.size or len(self.data) % dt.itemsize:
            raise TinymlError(
                f"tensor {self.index} ('{self.name}') holds {a.size} values, its shape "
                f"{list(self.shape)} needs {self.size}"
            )
        return a.reshape(self.shape)

    @property
    def scale(self) -> float:
        return float(self.quant.scale[0]) if self.quant and self.quant.scale.size else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.quant.zero_point[0]) if self.quant and self.quant.zero_point.size else 0


@dataclass(frozen=True)
class Operator:
    index: int
    op: str  # builtin name, e.g. "CONV_2D"
    inputs: tuple[int, ...]  # tensor indices, -1 = absent optional input
    outputs: tuple[int, ...]
    options: Table | None  # the builtin options table; read by the op class that knows its schema
    options_type: int = 0  # the schema's BuiltinOptions union type of `options` (validate.py checks it)


@dataclass(frozen=True)
class TfliteModel:
    path: str
    data: bytes
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@cache
def _builtin_names() -> dict[int, str]:
    """Names of builtin ops, read from the schema module shipped with tflite-micro (for error messages)."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError:  # pragma: no cover - tflite-micro is a pinned dependency
        return {}
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_name(code: int) -> str:
    return _builtin_names().get(code, f"BUILTIN_{code}")


def load(path: str | Path) -> TfliteModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TinymlError(f"cannot read {path}: {e.strerror}") from None
    try:
        return parse(data, str(path))
    except Malformed as e:
        raise TinymlError(f"{path}: malformed .tflite: {e}") from None


def parse(data: bytes, path: str = "<bytes>") -> TfliteModel:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise Malformed("no TFL3 file identifier (not a TFLite flatbuffer)")
    model = root(data, "model")
    subgraphs = model.tables(2, "subgraph")
    if len(subgraphs) != 1:
        raise TinymlError(f"{path}: {len(subgraphs)} subgraphs; only single-subgraph models are supported")
    sg = subgraphs[0]
    buffers = model.tables(4, "buffer")
    codes = [_opcode(t) for t in model.tables(1, "operator code")]
    tensors = tuple(_tensor(i, t, buffers, data) for i, t in enumerate(sg.tables(0, "tensor")))
    ops = []
    for i, t in enumerate(sg.tables(3, "operator")):
        ci = int(t.scalar(0, "<I", 0))
        if ci >= len(codes):
            raise Malformed(f"operator {i} uses opcode {ci}, the model defines {len(codes)}")
        ins = tuple(int(x) for x in t.array(1, "<i4"))
        outs = tuple(int(x) for x in t.array(2, "<i4"))
        for x in ins + outs:
            if x >= len(tensors) or x < -1:
                raise Malformed(f"operator {i} ({codes[ci]}) refers to tensor {x} of {len(tensors)}")
        ops.append(Operator(i, codes[ci], ins, outs, t.table(4, "options"), int(t.scalar(3, "<B", 0))))
    io = [tuple(int(x) for x in sg.array(k, "<i4")) for k in (1, 2)]
    for x in io[0] + io[1]:
        if not 0 <= x < len(tensors):
            raise Malformed(f"the model's inputs/outputs refer to tensor {x} of {len(tensors)}")
    return TfliteModel(path, data, tensors, tuple(ops), io[0], io[1])


def _opcode(t: Table) -> str:
    code = max(int(t.scalar(0, "<b", 0)), int(t.scalar(3, "<i", 0)))
    if code == 32:  # CUSTOM
        return f"CUSTOM({t.string(1)})"
    return op_name(code)


def _tensor(index: int, t: Table, buffers: list[Table], data: bytes) -> Tensor:
    shape = tuple(int(x) for x in t.array(0, "<i4"))
    if any(d < 0 for d in shape):
        raise TinymlError(
            f"tensor {index} has a dynamic shape {list(shape)}; only static shapes are supported"
        )
    if len(shape) > 8 or np.prod(shape, dtype=np.float64) >= 2**31:
        raise Malformed(f"tensor {index} has an implausible shape {list(shape)}")
    type_code = int(t.scalar(1, "<b", 0))
    dtype, np_dtype = TENSOR_TYPES.get(type_code, (f"type{type_code}", None))
    bi = int(t.scalar(2, "<I", 0))
    content = None
    if 0 < bi < len(buffers):
        content = _buffer_bytes(buffers[bi], data) or None
    elif bi >= len(buffers) and bi:
        raise Malformed(f"tensor {index} uses buffer {bi}, the model has {len(buffers)}")
    q = t.table(4, "quantization")
    quant = None
    if q is not None:
        scale = q.array(2, "<f4")
        if scale.size:
            quant = Quant(scale, q.array(3, "<i8"), int(q.scalar(6, "<i", 0)))
    return Tensor(index, t.string(3), shape, dtype if np_dtype else dtype, content, quant)


def _buffer_bytes(b: Table, data: bytes) -> bytes:
    offset = int(b.scalar(1, "<Q", 0))
    if offset > 1:  # large models keep buffers after the flatbuffer
        size = int(b.scalar(2, "<Q", 0))
        if offset + size > len(data):
            raise Malformed(f"a buffer at offset {offset} runs past the end of the file")
        return data[offset : offset + size]
    a = b.array(0, "u1")
    return a.tobytes()
