"""The pipeline's TOML config: a fixed schema, so a typo is one clear line naming the key, not a default.

Every key is optional except `data.spec`. Relative paths (run.dir, a board .toml, a folder: data dir, bench
inputs) are relative to the directory `tinyml pipeline` runs in, as on the command line.
See examples/pipeline.toml for every key with its meaning.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError

# section -> key -> (type(s), default). `None` default: not set.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "run": {"dir": ((str,), "runs/pipeline"), "board": ((str,), "cortex-m"), "port": ((str,), None),
            "baud": ((int,), None), "jobs": ((int,), 1), "threads": ((int,), None),
            "device": ((str,), "auto"), "workers": ((int,), None), "quiet": ((bool,), False),
            "executor": ((str,), "local"), "ray_address": ((str,), None)},
    "data": {"spec": ((str,), None), "seed": ((int,), 0), "val_fraction": ((float, int), 0.1),
             "limit": ((int,), None), "cache_dir": ((str,), None)},
    "train": {"epochs": ((int,), 50), "alpha": ((float, int), 0.25), "resolution": ((int,), 96),
              "channels": ((int,), 3), "batch_size": ((int,), 32), "augment": ((bool,), True)},
    "sweep": {"enabled": ((bool,), True), "cuts": ((str, list), "1-13"), "heads": ((str, list), "dscnn32_16"),
              "magnitude": ((str, list), None), "unfreeze": ((bool,), False), "epochs": ((int,), 50),
              "batch_size": ((int,), 32), "augment": ((bool,), True), "host_only": ((bool,), False),
              "bench_runs": ((int,), 3), "bench_inputs": ((int,), 2)},
    "select": {"point": ((str,), "best"), "max_drop_pts": ((float, int), 1.0)},
    "quantize": {"calibration_samples": ((int,), 200)},
    "bench": {"runs": ((int,), 10), "warmup": ((int,), 1), "random": ((int,), 3), "inputs": ((list,), None),
              "per_layer": ((bool,), True), "timeout": ((float, int), 60.0)},
}
REQUIRED = {("data", "spec")}


@dataclass(frozen=True)
class Config:
    """The validated config: `cfg["train"]["epochs"]`, every key present (defaults filled in)."""

    path: Path
    values: dict[str, dict[str, Any]]

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_type(where: str, key: str, value: Any, types: tuple[type, ...]) -> Any:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise TinymlError(f"{where}: '{key}' must be {_type_name(types)}, got {value!r}")
    return float(value) if float in types and isinstance(value, int) and int not in types else value


def load_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read and validate `path`; `overrides` (from command-line flags) win over the file."""
    path = Path(path)
    if not path.is_file():
        raise TinymlError(f"config {path}: no such file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TinymlError(f"config {path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TinymlError(f"config {path}: cannot read it: {e}") from None
    where = f"config {path}"
    values: dict[str, dict[str, Any]] = {}
    for section, table in raw.items():
        if section not in SCHEMA:
            raise TinymlError(f"{where}: unknown section [{section}] (known: {', '.join(SCHEMA)})")
        if not isinstance(table, dict):
            raise TinymlError(f"{where}: '{section}' must be a [{section}] table")
        for key in table:
            if key not in SCHEMA[section]:
                raise TinymlError(f"{where}: unknown key '{section}.{key}' "
                                  f"(known in [{section}]: {', '.join(SCHEMA[section])})")
    for section, keys in SCHEMA.items():
        given = {**raw.get(section, {}), **{k: v for k, v in (overrides or {}).get(section, {}).items()
                                           if v is not None}}
        values[section] = {}
        for key, (types, default) in keys.items():
            if key in given:
                values[section][key] = _check_type(where, f"{section}.{key}", given[key], types)
            elif (section, key) in REQUIRED:
                raise TinymlError(f"{where}: missing '{section}.{key}' (e.g. spec = \"synthetic\" or "
                                  f"\"folder:/path/to/images\")")
            else:
                values[section][key] = default
    cfg = Config(path=path, values=values)
    _check_values(cfg)
    return cfg


def _list_text(v: Any) -> str | None:
    """sweep.cuts / heads / magnitude as the sweep's comma-separated text ([3, 5] -> '3,5')."""
    if v is None:
        return None
    return ",".join(str(x) for x in v) if isinstance(v, list) else str(v)


def _check_values(cfg: Config) -> None:
    """Ranges, files and names, checked before any work starts (each error names its key)."""
    from tinyml.firmware.boards import load_board
    from tinyml.models.heads import parse_head_spec
    from tinyml.sweep.points import parse_cuts, parse_sparsities

    where = f"config {cfg.path}"

    def positive(section: str, key: str, minimum: int = 1) -> None:
        v = cfg[section][key]
        if v is not None and v < minimum:
            raise TinymlError(f"{where}: '{section}.{key}' must be at least {minimum}, got {v}")

    for section, key in (("run", "jobs"), ("run", "threads"), ("train", "epochs"), ("train", "batch_size"),
                         ("sweep", "epochs"), ("sweep", "batch_size"), ("sweep", "bench_runs"),
                         ("sweep", "bench_inputs"), ("quantize", "calibration_samples"), ("bench", "runs"),
                         ("bench", "random"), ("data", "limit")):
        positive(section, key)
    positive("bench", "warmup", 0)
    positive("run", "workers", 0)
    from tinyml.train.device import DEVICES

    if cfg["run"]["device"] not in DEVICES:
        raise TinymlError(f"{where}: 'run.device' must be one of {', '.join(DEVICES)}, "
                          f"got {cfg['run']['device']!r}")
    run = cfg["run"]
    if run["executor"] not in ("local", "ray"):
        raise TinymlError(f"{where}: 'run.executor' must be \"local\" or \"ray\", got {run['executor']!r}")
    if run["ray_address"] is not None and run["executor"] != "ray":
        raise TinymlError(f"{where}: 'run.ray_address' is for run.executor = \"ray\"")
    if not 0 < cfg["data"]["val_fraction"] < 1:
        raise TinymlError(f"{where}: 'data.val_fraction' must be between 0 and 1, "
                          f"got {cfg['data']['val_fraction']}")
    if cfg["train"]["channels"] not in (1, 3):
        raise TinymlError(f"{where}: 'train.channels' must be 1 or 3, got {cfg['train']['channels']}")
    spec = cfg["data"]["spec"]
    kind, _, arg = spec.partition(":")
    if kind not in ("synthetic", "folder", "vww"):
        raise TinymlError(f"{where}: 'data.spec' {spec!r} is not synthetic[:N], folder:DIR or vww:COCO_ROOT")
    if kind in ("folder", "vww") and not Path(arg).is_dir():
        raise TinymlError(f"{where}: 'data.spec' {spec!r}: no such directory {arg}")
    for i, f in enumerate(cfg["bench"]["inputs"] or ()):
        if not isinstance(f, str) or not Path(f).is_file():
            raise TinymlError(f"{where}: 'bench.inputs[{i}]' {f!r}: no such file")
    try:
        board = load_board(cfg["run"]["board"])
    except TinymlError as e:
        raise TinymlError(f"{where}: 'run.board': {e}") from None
    if cfg["run"]["port"] is None and not board.emulated:
        raise TinymlError(f"{where}: 'run.board' {board.name} is a real board: set 'run.port' "
                          "(e.g. \"/dev/ttyACM0\")")
    if cfg["run"]["port"] is not None and board.emulated:
        raise TinymlError(f"{where}: 'run.port' is for real boards; 'run.board' {board.name} is emulated")
    sweep = cfg["sweep"]
    for key, parse in (("cuts", parse_cuts), ("magnitude", parse_sparsities)):
        text = _list_text(sweep[key])
        if text is not None:
            try:
                parse(text)
            except TinymlError as e:
                raise TinymlError(f"{where}: 'sweep.{key}': {e}") from None
    for head in (_list_text(sweep["heads"]) or "").split(","):
        try:
            parse_head_spec(head.strip())
        except TinymlError as e:
            raise TinymlError(f"{where}: 'sweep.heads': {e}") from None
    point = cfg["select"]["point"]
    if point not in ("best", "base") and not point.startswith(("depth-", "magnitude-")):
        raise TinymlError(f"{where}: 'select.point' must be \"best\", \"base\" or a sweep point id like "
                          f"\"depth-c05-dscnn32_16-frozen\", got {point!r}")
    if point not in ("best", "base") and not sweep["enabled"]:
        raise TinymlError(f"{where}: 'select.point' {point!r} needs the sweep ('sweep.enabled' is false)")


sweep_list_text = _list_text
