"""Bad input at the CLI, a matrix generated from the parser itself: every subcommand, every option with a
type or a set of choices (a wrong type, out of range, not a choice), and every command's input paths (a
missing path, a file that is not text, a folder where a file belongs). Each must end with one line on
stderr and exit 2, no traceback, nothing written. A new option is covered the day it is added."""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tuner.cli.argtypes import positive_int
from tuner.cli.main import build_parser

#: Destinations that name a file or folder the command reads.
INPUT_PATHS = {"path", "paths", "file", "config", "dataset", "base", "space", "policy", "pool_dir", "warm_start"}
#: Destinations the command writes to.
OUTPUT_PATHS = {"out"}


def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                           argparse.ArgumentParser]]:
    """Every runnable subcommand: its words (``("datasets", "generate")``) and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield words, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaves(child, (*words, name))


def _flag(action: argparse.Action) -> str | None:
    return action.option_strings[-1] if action.option_strings else None


def _filler(action: argparse.Action, bad_path: str, out_dir: Path) -> list[str]:
    """A value for ``action`` that is valid except that input paths are ``bad_path``."""
    if action.dest in INPUT_PATHS:
        value = [bad_path]
    elif action.dest in OUTPUT_PATHS:
        value = [str(out_dir / "out")]
    elif action.choices:
        value = [str(next(iter(action.choices)))]
    elif action.type in (int, float, positive_int):
        value = ["1"]
    else:
        value = ["x"]
    flag = _flag(action)
    return [flag, *value] if flag else value


def _value_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
            and a.nargs != 0]


def _type_cases() -> list[tuple[str, list[str], str]]:
    """(id, argv, what the line must name): a wrong value for every typed or choice option."""
    cases = []
    for words, parser in leaves(build_parser()):
        for action in _value_actions(parser):
            flag = _flag(action)
            if flag is None:
                continue
            bad = []
            if action.type in (int, float, positive_int):
                bad.append("abc")
            if action.type is positive_int:
                bad += ["0", "-3"]
            if action.choices:
                bad.append("not-a-choice")
            for value in bad:
                cases.append((f"{' '.join(words)} {flag}={value}", [*words, flag, value], flag))
    return cases


def _path_leaves() -> list[tuple[str, tuple[str, ...], argparse.ArgumentParser]]:
    """Subcommands with a required input path (those without one, like ``demo``, would run)."""
    out = []
    for words, parser in leaves(build_parser()):
        required = [a for a in _value_actions(parser) if a.required or not a.option_strings]
        if any(a.dest in INPUT_PATHS for a in required):
            out.append((" ".join(words), words, parser))
    return out


TYPE_CASES = _type_cases()
PATH_LEAVES = _path_leaves()


def _one_line(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 2, (done.args, done.stdout[-1000:], done.stderr[-1000:])
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("case", TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_a_wrong_option_value_is_one_line(case: tuple[str, list[str], str],
                                          cli: Callable[..., subprocess.CompletedProcess]) -> None:
    _, argv, flag = case
    with pytest.raises(SystemExit) as exit_info:  # argparse exits before the command runs
        cli(*argv)
    assert exit_info.value.code == 2


def test_the_matrix_covers_every_command_and_typed_option() -> None:
    commands = {" ".join(w) for w, _ in leaves(build_parser())}
    assert {"sweep", "confirm", "compare", "study", "datasets generate", "calibrate"} <= commands
    assert len(TYPE_CASES) >= 30 and len(PATH_LEAVES) >= 10, (len(TYPE_CASES), len(PATH_LEAVES))


def test_wrong_option_values_print_one_line_from_the_real_entry_point() -> None:
    """The same through the installed command (argparse's error path): one line, exit 2."""
    import sys

    cli = str(Path(sys.executable).parent / "mbrl-tune")
    for argv in (["sweep", "--trials", "abc"], ["confirm", "x", "--seeds", "0"], ["datasets", "generate",
                                                                                 "--env", "ant"]):
        done = subprocess.run([cli, *argv], capture_output=True, text=True, timeout=120)
        _one_line(done)
        assert argv[-2] in done.stderr and "--help" in done.stderr, done.stderr


def test_a_usage_error_is_answered_before_torch_ray_or_gymnasium_load() -> None:
    """The parser and the facade it reads its choices from import no torch, Ray or Gymnasium (seconds of
    imports): a mistyped command is answered at once, and `--help` too."""
    import sys

    probe = ("import sys\nfrom tuner.cli.main import main\ntry:\n    main(['sweep', '--trials', '0'])\n"
             "except SystemExit as exc:\n    print(exc.code, *sorted(m for m in ('torch', 'ray', 'gymnasium', 'ax') "
             "if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2"], (done.stdout, done.stderr)
    assert "--trials" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("bad", ["missing", "binary", "folder"])
@pytest.mark.parametrize("leaf", PATH_LEAVES, ids=[p[0] for p in PATH_LEAVES])
def test_a_bad_input_path_is_one_line(leaf: tuple[str, tuple[str, ...], argparse.ArgumentParser], bad: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      cli: Callable[..., subprocess.CompletedProcess]) -> None:
    _, words, parser = leaf
    monkeypatch.chdir(tmp_path)
    path = {"missing": tmp_path / "absent", "binary": tmp_path / "bin.yaml", "folder": tmp_path / "folder"}[bad]
    if bad == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif bad == "folder":
        path.mkdir()
    out = tmp_path / "outputs"
    out.mkdir()
    argv = list(words)
    for action in _value_actions(parser):
        if action.required or not action.option_strings:
            argv += _filler(action, str(path), out)
    done = cli(*argv)
    _one_line(done)
    assert str(path.name) in done.stderr or "absent" in done.stderr or "folder" in done.stderr, done.stderr
    assert not any(out.iterdir()), f"{argv}: wrote {list(out.iterdir())}"


#: Values a run's config can hold that this machine or the config's rules refuse: each must be one line,
#: exit 2, whichever command meets it first (``--device`` of dataset generation, ``--set`` of the others).
BAD_CONFIG_VALUES = ["device=tpu", "device=cuda:7", "epochs=0", "sac.gamma=abc", "num_models=0"]
#: The other inputs (valid) of each command that takes config values; ``confirm``'s ``--set`` is its
#: budget, checked against a real sweep in tests/tuner/test_confirm.py.
VALID_INPUTS = {
    "datasets generate": ["--env", "hopper", "--level", "random", "--size", "10", "--out", "{out}/d.hdf5"],
    "train": ["--config", "{config}", "--out", "{out}/train"],
    "sweep": ["--space", "quick", "--dataset", "{data}", "--trials", "2", "--name", "s", "--storage", "{out}",
              "--preset", "tiny"],
    "calibrate": ["--dataset", "{data}", "--pool-dir", "{pools}", "--out", "{out}/cal"],
}


def _config_value_cases() -> list[tuple[str, tuple[str, ...], str]]:
    """(command, its words, bad value) for every command with ``--set`` or ``--device``, from the parser."""
    cases = []
    for words, parser in leaves(build_parser()):
        dests = {a.dest for a in _value_actions(parser)}
        name = " ".join(words)
        if not {"set", "device"} & dests or name == "confirm":
            continue
        assert name in VALID_INPUTS, f"{name}: takes config values; give it valid inputs in VALID_INPUTS"
        for value in BAD_CONFIG_VALUES:
            if "set" in dests or value.startswith("device="):
                cases.append((name, words, value))
    return cases


CONFIG_VALUE_CASES = _config_value_cases()


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="this machine has a cuda:7")
@pytest.mark.parametrize("case", CONFIG_VALUE_CASES, ids=[f"{c[0]} {c[2]}" for c in CONFIG_VALUE_CASES])
def test_a_bad_config_value_is_one_line(case: tuple[str, tuple[str, ...], str], tmp_path: Path,
                                        hopper_random_file: Path, monkeypatch: pytest.MonkeyPatch,
                                        cli: Callable[..., subprocess.CompletedProcess]) -> None:
    """A device this machine lacks, a value out of range or of the wrong type, given to every command that
    takes config values, with its other inputs valid: refused in one line before anything is written."""
    name, words, value = case
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs"
    out.mkdir()
    config = tmp_path / "trial.yaml"
    config.write_text(f"dataset: {hopper_random_file}\npool_dir: {tmp_path / 'pools'}\n")
    fill = {"out": str(out), "config": str(config), "data": str(hopper_random_file), "pools": str(tmp_path / "pools")}
    argv = [arg.format(**fill) for arg in VALID_INPUTS[name]]
    key, _, raw = value.partition("=")
    argv += ["--device", raw] if name == "datasets generate" else ["--set", value]
    done = cli(*words, *argv)
    _one_line(done)
    assert raw in done.stderr or key in done.stderr, done.stderr
    assert not any(p.is_file() for p in out.rglob("*")), f"{words}: wrote {list(out.rglob('*'))}"


@pytest.mark.parametrize(("extra", "named"), [
    (["--set", "device=cuda"], "--gpus-per-trial"),
    (["--gpus-per-trial", "1"], "sit idle"),
    (["--gpus-per-trial", "0.5", "--set", "device=cuda:1"], "cuda:0"),
], ids=["cuda without a GPU reserved", "a GPU reserved for a cpu trial", "a GPU index under Ray"])
def test_a_sweeps_device_and_reserved_gpus_must_agree(extra: list[str], named: str, tmp_path: Path,
                                                      hopper_random_file: Path,
                                                      cli: Callable[..., subprocess.CompletedProcess]) -> None:
    """Checked on the driver, before Ray starts (a driver need not have the GPUs its trials reserve)."""
    done = cli("sweep", "--space", "quick", "--dataset", str(hopper_random_file), "--trials", "2", "--name", "g",
               "--storage", str(tmp_path), "--preset", "tiny", *extra)
    _one_line(done)
    assert named in done.stderr, done.stderr
    assert not (tmp_path / "g").exists()
