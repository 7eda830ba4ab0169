"""The QEMU TCG plugin (qemu_prof.c): built with the host gcc by scripts/setup.sh, or here on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tinyml.errors import TinymlError
from tinyml.util import REPO_ROOT

SOURCE = Path(__file__).with_name("qemu_prof.c")
# In a checkout: build/ beside the sources (setup.sh builds it there); an installed wheel: the user's cache.
LIBRARY = (REPO_ROOT / "build" if (REPO_ROOT / ".git").exists() else Path.home() / ".cache" / "tinyml") \
    / "qemu-plugin" / "libtinyml_prof.so"
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-fvisibility=hidden"]


def build_plugin(out: Path = LIBRARY) -> Path:
    """Compile the plugin (about a second); the same command scripts/setup.sh runs."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise TinymlError(
            "the cycle profiler needs a host C compiler to build its QEMU plugin: apt-get install gcc "
            "(or run scripts/setup.sh)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}.so")  # parallel sweep jobs may build at once
    try:
        r = subprocess.run(
            [cc, *CFLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise TinymlError(f"building the QEMU plugin {SOURCE.name} timed out") from None
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = (r.stderr.strip().splitlines() or ["(no output)"])[0]
        raise TinymlError(f"building the QEMU plugin {SOURCE} failed: {first}")
    tmp.replace(out)
    return out


def plugin_path() -> Path:
    """The plugin library, (re)built when missing or older than its source."""
    if not LIBRARY.exists() or LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
        build_plugin()
    return LIBRARY


def plugin_args(out: Path, marks: list[tuple[str, int, int]], flash: tuple[int, int] | None,
                skip: list[tuple[int, int]] = ()) -> list[str]:
    """QEMU arguments loading the plugin: marks are (open|close, channel, address); `skip` address ranges are
    interrupt handlers, transparent to fall-through counting."""
    opts = [f"out={out}"] + [f"{kind}={ch}:{addr:#x}" for kind, ch, addr in marks]
    opts += [f"skip={lo:#x}:{hi:#x}" for lo, hi in skip]
    if flash:
        opts.append(f"flash={flash[0]:#x}:{flash[1]:#x}")
    for o in opts:
        if "," in o:
            raise TinymlError(f"profile path must not contain ',' (QEMU splits plugin options there): {out}")
    return ["-plugin", ",".join([str(plugin_path()), *opts])]
