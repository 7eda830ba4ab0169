"""Build a compiled model for the host with cc and run it on many inputs in one process (verify and tests)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from tinyml.errors import TinymlError

CFLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Werror")
BUILD_TIMEOUT = 600.0  # s: a model's C builds in seconds; minutes mean a stuck compiler or a starved machine
RUN_TIMEOUT = 600.0


def _run(cmd: list[str], timeout: float, what: str, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a deadline that ends in one line saying what hung (never a traceback)."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise TinymlError(f"{what} did not finish within {timeout:g} s (machine overloaded?)") from None
    except OSError as e:
        raise TinymlError(f"{what}: {e.strerror}") from None


def host_cc() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise TinymlError("no host C compiler found (install gcc, or set CC)")
    return cc


def build(
    model_dir: str | os.PathLike,
    name: str,
    exe: str | os.PathLike,
    debug: bool = False,
    extra_flags: tuple[str, ...] = (),
) -> Path:
    """Compile DIR/*.c (without the .tflite array, which the harness does not need) plus the test harness."""
    import jinja2

    model_dir, exe = Path(model_dir), Path(exe)
    exe.parent.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tinyml.compile", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    main_c = exe.with_suffix(".main.c")
    main_c.write_text(env.get_template("host_main.c.j2").render(name=name, P=name.upper()))
    srcs = sorted(str(p) for p in model_dir.glob("*.c") if p.name != f"{name}_tflite.c")
    cmd = [
        host_cc(),
        *CFLAGS,
        *extra_flags,
        *(["-DTINYML_DEBUG"] if debug else []),
        "-I",
        str(model_dir),
        *srcs,
        str(main_c),
        "-lm",
        "-o",
        str(exe),
    ]
    r = _run(cmd, BUILD_TIMEOUT, f"host build of {model_dir} ({cmd[0]})", text=True)
    if r.returncode != 0:
        raise TinymlError(f"host build of {model_dir} failed:\n{r.stderr.strip()}")
    return exe


def run(exe: str | os.PathLike, inputs: np.ndarray, out_bytes: int) -> np.ndarray:
    """Outputs (N, out_bytes) int8 for inputs (N, in_bytes) int8."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    r = _run([str(exe)], RUN_TIMEOUT, f"running {exe}", input=x.tobytes())
    if r.returncode != 0:
        raise TinymlError(f"{exe} exited with {r.returncode}: {r.stderr.decode(errors='replace')[:500]}")
    out = np.frombuffer(r.stdout, dtype=np.int8)
    if out.size != x.shape[0] * out_bytes:
        raise TinymlError(f"{exe} wrote {out.size} bytes, expected {x.shape[0] * out_bytes}")
    return out.reshape(x.shape[0], out_bytes).copy()


def run_debug(exe: str | os.PathLike, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every layer's output (layer index -> int8 bytes) for one input, from a build with debug=True."""
    data = np.ascontiguousarray(x, dtype=np.int8).tobytes()
    r = _run([str(exe)], RUN_TIMEOUT, f"running {exe}", input=data)
    if r.returncode != 0:
        raise TinymlError(f"{exe} exited with {r.returncode}")
    data, pos, frames = r.stdout, 0, {}
    while pos + 8 <= len(data):
        layer, n = struct.unpack_from("<iI", data, pos)
        frames[layer] = np.frombuffer(data, dtype=np.int8, count=n, offset=pos + 8).copy()
        pos += 8 + n
    return frames
