"""Small helpers every stage uses: atomic writes, JSON, the shipped reference data, the run's provenance."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    A killed run therefore never leaves a half-written checkpoint, JSON or model behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


EXAMPLES_DIR = REPO_ROOT / "examples"


def examples_dir() -> Path:
    """The reference models and images the repo ships (examples/models, examples/images; see its README)."""
    return EXAMPLES_DIR


def git_commit() -> str:
    """The commit of this code, so every result says which code produced it: asked of the git checkout, else
    as recorded in an installed wheel (tinyml/COMMIT, written at build time); 'unknown' outside both."""
    recorded = Path(__file__).resolve().parent / "COMMIT"
    if not (REPO_ROOT / ".git").exists():
        return recorded.read_text().strip() if recorded.is_file() else "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def template_env(package: str) -> Any:
    """The Jinja environment for `package`'s templates/: C and Makefiles, so no HTML escaping, and a
    template that names an undefined variable fails instead of writing an empty string."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
