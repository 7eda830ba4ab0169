"""`make setup`'s first step: is this Python one tinyml supports? Reads requires-python from pyproject.toml.

Runs on any Python 3 (no tomllib), so an old interpreter gets this message instead of a pip failure later.
Usage: python scripts/check_python.py [X.Y]   (X.Y: check that version instead of this interpreter's)
"""

import re
import sys
from pathlib import Path


def requires_python() -> str:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    m = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M)
    return m.group(1) if m else ""


def satisfies(version: tuple, spec: str) -> bool:
    """Only the comparisons pyproject uses: >=, <, <=, >, ==, != on X.Y."""
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(\d+)\.(\d+)", clause)
        if m and not ops[m.group(1)](tuple(version[:2]), (int(m.group(2)), int(m.group(3)))):
            return False
    return True


def main() -> int:
    spec = requires_python()
    if len(sys.argv) > 1:
        version = tuple(int(x) for x in sys.argv[1].split(".")[:2])
        where = f"Python {sys.argv[1]}"
    else:
        version = sys.version_info[:2]
        where = f"{sys.executable} is Python {sys.version.split()[0]}"
    if satisfies(version, spec):
        return 0
    print(f"setup: tinyml needs Python {spec} (requires-python in pyproject.toml: the pinned torch and "
          f"TensorFlow wheels are built for it), but {where}.\n"
          "setup: install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv) and run  "
          "PYTHON=python3.11 make setup", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
