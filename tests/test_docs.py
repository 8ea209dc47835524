"""The docs a user's clone has: every link in the README and docs/ resolves inside the repository, no
file cites the team's shared folder (outside the repository), and every CLI command's --help ends with
an example."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
from pathlib import Path

import pytest

from tuner.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_resolves_inside_the_repository() -> None:
    checked = 0
    for doc in _docs():
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (doc.parent / target).resolve()
            assert path.exists(), f"{doc.name}: link to {target} is broken"
            assert ROOT in path.parents or path == ROOT, f"{doc.name}: {target} points outside the repository"
            checked += 1
    assert checked >= 3


def test_no_tracked_file_cites_the_shared_folder() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    needle = "../" + "shared"  # spelled in two parts so that this file does not cite it
    offenders = [f for f in files if f.endswith((".py", ".md", ".yaml", ".toml"))
                 and needle in (ROOT / f).read_text(errors="replace")]
    assert offenders == []


def _commands(parser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                out.append((*prefix, name))
                out.extend(_commands(sub, (*prefix, name)))
    return out


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_every_command_help_ends_with_an_example(command: tuple[str, ...]) -> None:
    out = io.StringIO()  # through the CLI's entry point in this process: a process per command took ~5 s
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert lines[-2] == "example:" or "example:" in lines[-3:], out.getvalue()[-500:]
    assert lines[-1].strip().startswith("mbrl-tune ")
