"""One grammar: the model as MODEL or --model, outputs as -o/--out, documented exit codes (0/1/2/130)."""

from __future__ import annotations

import pytest

from tinyml import cli
from tinyml.cliargs import EXIT_CODES_HELP

# verb -> the flags it needs besides the model and the output (to get past argparse)
MODEL_VERBS = ["compile", "verify", "profile", "export", "bench", "quantize", "prune", "sweep"]
OUT_VERBS = ["compile", "export", "train", "quantize", "prune", "sweep", "bench", "profile", "pipeline"]


def _parse(argv: list[str]):
    parser, _ = cli.build_parser()
    args = parser.parse_args(argv)
    cli.resolve_model(args, cli.parsers[args.verb])
    return args


@pytest.mark.parametrize("verb", MODEL_VERBS)
def test_the_model_is_positional_or_an_option_in_every_command(verb):
    extra = ["-o", "out"] if verb in ("compile", "export", "quantize", "prune", "sweep") else []
    assert _parse([verb, "m.x", *extra]).model is not None
    assert str(_parse([verb, "m.x", *extra]).model) == str(_parse([verb, "--model", "m.x", *extra]).model)
    with pytest.raises(SystemExit) as e:
        _parse([verb, "a.x", "--model", "b.x", *extra])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        _parse([verb, *extra])
    assert e.value.code == 2


@pytest.mark.parametrize("verb", OUT_VERBS)
def test_every_output_is_dash_o_or_out(verb, capsys):
    with pytest.raises(SystemExit):
        cli.main([verb, "--help"])
    text = capsys.readouterr().out
    assert "-o " in text and "--out" in text
    assert " ".join(EXIT_CODES_HELP.split()) in " ".join(text.split())


def test_old_spellings_still_work():
    assert str(_parse(["prune", "--base", "b.pt", "--out", "o", "--cut", "3"]).model) == "b.pt"
    assert _parse(["compile", "m.tflite", "--output", "d"]).output == "d"
    assert _parse(["bench", "--model", "m.tflite", "--json", "r.json"]).json == "r.json"


def test_exit_codes(tmp_path, capsys):
    assert cli.main(["compile", str(tmp_path / "missing.tflite"), "-o", str(tmp_path / "o")]) == 1  # runtime
    assert cli.main(["export", "m.tflite", "--board", "nope", "-o", str(tmp_path / "o")]) == 2  # bad flag
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", "--no-such-flag"])
    assert e.value.code == 2
    assert cli.main([]) == 2


def test_interrupted_is_130(monkeypatch, capsys):
    from tinyml.compile import cli as compile_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(compile_cli, "run", interrupted)
    assert cli.main(["compile", "m.tflite", "-o", "out"]) == 130
    assert "interrupted" in capsys.readouterr().err
