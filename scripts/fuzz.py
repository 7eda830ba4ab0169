"""`make fuzz`: the long fuzz campaign (issue 19). Seeded, so every finding is reproducible.

1. front-end: N structure-aware mutants of the seed models (tests/fuzz_seeds + examples/models) through parse,
   validate, layers, memory plan and bounds check, in-process: any exception but a one-line TinymlError, or a
   run over 10 s, is a finding;
2. compiled: M accepted mutants compiled to C, built with ASan/UBSan, run on random inputs and compared with
   TFLM: a sanitizer report, a build failure, a mismatch or a model TFLM refuses but we accept is a finding;
3. host protocol: F corrupted, truncated and reordered device replies fed to the host side
   (tests/protocol_fuzz.py): an uncaught exception or a hang is a finding.

Findings go to tests/fuzz_corpus/ (replayed by tests/test_fuzz.py); figures to runs/fuzz/summary.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fuzzing import (  # noqa: E402
    Mutator,
    SanitizedRunner,
    TflmWorker,
    check_compiled,
    front_end,
    temp_dir,
)


def _seeds() -> list[tuple[str, bytes]]:
    paths = sorted((REPO / "tests" / "fuzz_seeds").glob("*.tflite")) + sorted(
        (REPO / "examples" / "models").glob("*.tflite")
    )
    return [(p.stem, p.read_bytes()) for p in paths]


class Progress:
    def __init__(self, what: str, total: int):
        self.what, self.total, self.t0, self.last = what, total, time.monotonic(), 0.0

    def tick(self, done: int, counts: Counter) -> None:
        now = time.monotonic()
        if now - self.last >= 30 or done == self.total:
            self.last = now
            rate = done / max(now - self.t0, 1e-9)
            print(f"[{self.what}] {done:,}/{self.total:,} ({rate:,.0f}/s) {dict(counts)}", flush=True)


def save(corpus: Path, kind: str, name: str, n: int, data: bytes, note: str) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}-{name}-{n}"
    (corpus / f"{stem}.tflite").write_bytes(data)
    (corpus / f"{stem}.txt").write_text(note[:4000] + "\n")


def front_end_campaign(n: int, corpus: Path) -> dict:
    seeds = _seeds()
    small = [(name, Mutator(data, k)) for k, (name, data) in enumerate(seeds) if len(data) < 100_000]
    big = [(name, Mutator(data, k)) for k, (name, data) in enumerate(seeds) if len(data) >= 100_000]
    counts: Counter = Counter()
    prog = Progress("front-end", n)
    t0 = time.monotonic()
    for i in range(n):
        # the reference models (300 KB, 30 ops) take ~20x longer per mutant: one mutant in 20 is theirs
        pool = big if big and i % 20 == 19 else small
        j = i // 20 if pool is big else i
        name, mu = pool[j % len(pool)]
        k = j // len(pool)
        data, what = mu.mutant(k)
        o = front_end(data)
        counts[o.kind] += 1
        if o.kind in ("crash", "hang"):
            save(corpus, o.kind, name, k, data, f"{what}\n{o.detail}")
        prog.tick(i + 1, counts)
    return {"mutants": n, "seconds": round(time.monotonic() - t0, 1), **counts}


def compiled_campaign(m: int, corpus: Path) -> dict:
    seeds = [(name, data) for name, data in _seeds() if len(data) < 100_000]  # small seeds: fast builds
    mutators = [(name, Mutator(data, 1000 + k)) for k, (name, data) in enumerate(seeds)]
    work = temp_dir()
    runner, tflm = SanitizedRunner(work), TflmWorker()
    counts: Counter = Counter()
    prog = Progress("compiled", m)
    t0, checked, k = time.monotonic(), 0, 0
    try:
        while checked < m:
            for name, mu in mutators:
                data, what = mu.mutant(k)
                if front_end(data).kind != "accepted":
                    continue
                v = check_compiled(data, work / "m", runner, tflm, seed=k)
                counts[v.kind] += 1
                checked += 1
                if v.kind not in ("bit-exact", "tflm-crashed"):
                    save(corpus, v.kind, name, k, data, f"{what}\n{v.detail}")
                prog.tick(checked, counts)
                if checked >= m:
                    break
            k += 1
    finally:
        tflm.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"compiled": checked, "seconds": round(time.monotonic() - t0, 1), **counts}


def protocol_campaign(f: int) -> dict:
    from protocol_fuzz import fuzz_frames

    t0 = time.monotonic()
    res = fuzz_frames(f, seed=7, progress=lambda done, c: print(f"[protocol] {done:,}/{f:,} {c}", flush=True))
    return {"frames": f, "seconds": round(time.monotonic() - t0, 1), **res}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=100_000)
    ap.add_argument("--compiled", type=int, default=1_000)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--corpus", type=Path, default=REPO / "tests" / "fuzz_corpus")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "fuzz")
    a = ap.parse_args()
    summary = {}
    if a.mutants:
        summary["front_end"] = front_end_campaign(a.mutants, a.corpus)
    if a.compiled:
        summary["compiled"] = compiled_campaign(a.compiled, a.corpus)
    if a.frames:
        summary["protocol"] = protocol_campaign(a.frames)
    a.out.mkdir(parents=True, exist_ok=True)
    tmp = a.out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(a.out / "summary.json")
    print(json.dumps(summary, indent=2))
    bad = sum(v for s in summary.values() for k, v in s.items()
              if k in ("crash", "hang", "sanitizer", "mismatch", "build-failed", "tflm-refused", "exceptions",
                       "hangs"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
