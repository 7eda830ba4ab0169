"""The reference models and images the repo ships are the ones its README names (SHA-256 per file)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROWS = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", (EXAMPLES / "README.md").read_text(), re.M)


def test_every_shipped_reference_file_is_listed():
    listed = {name for name, _ in ROWS}
    shipped = {str(p.relative_to(EXAMPLES)) for d in ("models", "images") for p in (EXAMPLES / d).iterdir()}
    assert listed == shipped and len(listed) == 6


@pytest.mark.parametrize("name,digest", ROWS)
def test_reference_file_checksum(name: str, digest: str):
    assert hashlib.sha256((EXAMPLES / name).read_bytes()).hexdigest() == digest
