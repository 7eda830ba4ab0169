"""The numerical reference: TensorFlow Lite Micro's interpreter from pip `tflite-micro`.

Everything tinyml runs on a device must match this byte for byte (not TFLite's XNNPACK, see FACTS.md).
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from tinyml.errors import TinymlError


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


class TflmReference:
    """One TFLM interpreter for one model; `invoke` takes and returns the raw int8 tensors."""

    def __init__(self, model_bytes: bytes, arena_size: int | None = None, preserve_all_tensors: bool = False):
        rt = _runtime()
        cfg = (rt.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
               else rt.InterpreterConfig.kAllocationRecording)
        try:
            self._it = rt.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size,
                                                 intrepreter_config=cfg)
        except Exception as e:  # TFLM raises RuntimeError with its own log on fd 2
            raise TinymlError(f"TFLM could not load the model: {e}") from None
        self.input_details = self._it.get_input_details(0)
        self.output_details = self._it.get_output_details(0)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        shape = tuple(self.input_details["shape"])
        dtype = self.input_details["dtype"]
        x = np.asarray(x)
        if x.size != int(np.prod(shape)):
            raise TinymlError(f"input has {x.size} elements, the model takes {shape}")
        self._it.set_input(x.reshape(shape).astype(dtype, copy=False), 0)
        self._it.invoke()
        return np.array(self._it.get_output(0), copy=True)

    def tensor(self, index: int) -> np.ndarray:
        """Any tensor by flatbuffer index (needs preserve_all_tensors=True for intermediates)."""
        t = self._it.GetTensor(index, 0)
        if isinstance(t, dict):  # this tflite-micro build returns {dtype, shape, tensor_data}
            return np.array(t["tensor_data"], copy=True).reshape(t["shape"])
        return np.array(t, copy=True)


def tflm_arena_bytes(model_bytes: bytes) -> int:
    """Arena bytes TFLM allocates for this model on this (64-bit) host, read from print_allocations()."""
    ref = TflmReference(model_bytes)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            ref._it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        log = tmp.read().decode(errors="replace")
    m = re.search(r"Arena allocation total (\d+) bytes", log)
    if not m:
        raise TinymlError("TFLM did not report its arena size")
    return int(m.group(1))
