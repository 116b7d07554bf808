"""The documentation site builds with warnings as errors, and its examples cannot go stale.

The site (MkDocs, ``mkdocs.yml``) generates its command-line reference from the click commands, and
its metric and Interactive Brokers settings tables from the code, so those cannot drift. Every
``python`` code block of a page (and of the README) runs, in page order, against a home where the
quick start (``ntrader demo``) has run; every ``ntrader`` command line in a ``bash`` block names a
command and options the real command line has; every setting is documented.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ntrader_pipeline.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_examples(page: Path) -> list[str]:
    """The page's ``python`` fenced blocks, in order (a block fenced ``python no-run`` is shown only)."""
    text = page.read_text()
    return [m.group(1) for m in FENCE.finditer(text) if "no-run" not in m.group(0).splitlines()[0]]


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=example_environment(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "site" / "cli" / "index.html").read_text().count("ntrader data import-csv") >= 1


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder where the quick start ran: ``.ntrader/`` holds the demo's bars and runs."""
    folder = tmp_path_factory.mktemp("quick-start")
    subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", "demo"],
        cwd=folder,
        env=example_environment(),
        check=True,
        capture_output=True,
        timeout=900,
    )
    return folder


def example_environment() -> dict[str, str]:
    """This environment without ``NTRADER_*`` settings, but with the repository's strategy files:
    the examples run as in a fresh clone, from another folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    return {**env, "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO / "strategy_configs"), "NO_MKDOCS_2_WARNING": "1"}


PAGES = sorted(DOCS.rglob("*.md")) + [REPO / "README.md"]
PAGES_WITH_EXAMPLES = [p for p in PAGES if python_examples(p)]


@pytest.mark.slow  # the quick start in a fresh process, then runs through Dagster: a minute or more
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_a_pages_python_examples_run(page: Path, demo_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "examples.py"
    script.write_text("\n\n".join(python_examples(page)))
    ran = subprocess.run(
        [sys.executable, str(script)],
        cwd=demo_home,
        env=example_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert ran.returncode == 0, f"{page.name}: {ran.stderr[-3000:]}"


NOTEBOOKS = sorted(DOCS.rglob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_notebook_runs_unchanged_where_the_quick_start_ran(
    notebook: Path, demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cell, in order, on a kernel of this very Python (a kernel spec written for the test,
    so no other Python installed as ``python3`` can stand in), in the quick start's folder."""
    import nbformat
    from nbclient import NotebookClient

    kernels = tmp_path / "jupyter"
    (kernels / "kernels" / "ntrader-test").mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "ntrader test", "language": "python"}
    (kernels / "kernels" / "ntrader-test" / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))  # where the client looks kernel specs up
    document = nbformat.read(notebook, as_version=4)
    assert not [cell for cell in document.cells if cell.get("outputs")], "the notebook's outputs are not cleared"
    inline = "module://matplotlib_inline.backend_inline"  # charts come back as cell outputs
    client = NotebookClient(
        document, kernel_name="ntrader-test", timeout=900, resources={"metadata": {"path": str(demo_home)}}
    )
    client.execute(env={**example_environment(), "MPLBACKEND": inline})
    outputs = [output for cell in document.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs), "no chart was drawn"
    # a cell shows its value and its charts, nothing a run printed or warned on the way
    noise = [
        o
        for o in outputs
        if o.output_type == "stream" or (o.output_type == "display_data" and "image/png" not in o.data)
    ]
    assert not noise, noise[0]


BASH = re.compile(r"^```(?:bash|console|shell)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def command_lines(page: Path) -> list[list[str]]:
    """The ``ntrader`` invocations of a page's shell blocks, as words: comments, ``uv run``, optional
    brackets and continuation lines removed."""
    found = []
    for block in BASH.finditer(page.read_text()):
        text = block.group(1).replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("uv run ").strip()
            if line.startswith("ntrader "):
                found.append(shlex.split(line.replace("[", " ").replace("]", " ").replace("…", " ")))
    return found


def unknown_words(words: list[str]) -> list[str]:
    """The words of an ``ntrader`` command line the real command line does not know: a command that
    does not exist, or an option its command does not take."""
    command: click.Command = cli
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        if sub is None:
            return [rest[0]]
        command, rest = sub, rest[1:]
    if command.context_settings.get("ignore_unknown_options"):
        return []
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    return [w.split("=", 1)[0] for w in rest if w.startswith("-") and w.split("=", 1)[0] not in known]


def test_every_command_line_in_the_docs_is_one_the_cli_takes() -> None:
    checked = 0
    for page in PAGES:
        for words in command_lines(page):
            assert not unknown_words(words), f"{page.relative_to(REPO)}: {' '.join(words)}: {unknown_words(words)}"
            checked += 1
    assert checked > 10  # the pages do show commands


def test_every_setting_is_documented() -> None:
    from ntrader_pipeline.settings import Settings

    page = (DOCS / "settings.md").read_text()
    missing = [f"NTRADER_{name.upper()}" for name in Settings.model_fields if f"NTRADER_{name.upper()}" not in page]
    assert not missing, f"docs/settings.md does not document {missing}"
