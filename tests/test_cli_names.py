"""One name per meaning across the commands, and --help that a person reads without decoding it.

Walks every command of ``normexport`` (subcommands of ``analyze`` and ``weights`` included):

* a short name (``-o``, ``-f``) stands for the same long option in every command that has it;
* a long name that two commands share means one thing, written down in :data:`SHARED` (a name
  that becomes shared must be added there, which makes its meaning a decision), and is a flag in
  all of them or takes a value in all of them;
* no ``--help`` shows typer's type names (``<bool>``, ``<str>``, ``<int>``, ``<path>``,
  ``<list[str]>``, ``<a|b>``) or a ``{name}`` argument in its usage line.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import typer.main
from typer.testing import CliRunner

from cli import app

runner = CliRunner()

#: Every long option that more than one command takes, and the one thing it means in all of them.
SHARED = {
    "--allow-cpu-fallback": "run on the CPU, and say so, when the GPU is not usable",
    "--batch-size": "how many samples go through the model at once",
    "--calibration-method": "how low-precision calibration picks its ranges",
    "--data": "the data a model is evaluated or measured on (digits, folder:DIR, …)",
    "--data-dir": "where a data set lives on disk",
    "--device": "the device the model runs on",
    "--download": "fetch a missing public data set",
    "--help": "show the command's help",
    "--input-size": "the H W a model is exported or measured at",
    "--json": "one JSON document on stdout instead of a table",
    "--keep-stream-bn": "keep the residual stream's BatchNorms as affines when folding",
    "--max-accuracy-drop": "the accuracy a low-precision artefact may lose",
    "--max-batch-size": "the largest batch a server forms",
    "--min-agreement": "the top-1 agreement a low-precision artefact must keep",
    "--model-arg": "a builder keyword, KEY=VALUE",
    "--name": "the name a model is served under",
    "--num-classes": "the classifier size, checked against the file or the data",
    "--output": "where the command writes its result",
    "--plot": "a PNG chart to write",
    "--precision": "the arithmetic a backend runs in",
    "--repeats": "interleaved timing blocks",
    "--runtime": "the inference runtime that runs an ONNX model",
    "--samples": "how many inputs are compared",
    "--seed": "the seed of initialisation and random inputs",
    "--threads": "CPU threads for inference",
    "--trust-code": "allow loading TorchScript and .pt2 programs",
    "--workers": "parallel workers that load the inputs",
}

#: How typer writes a type in help (``<int>``, ``<list[str]>``, ``<onnx|pt2>``), which nobody should read.
TYPE_NAME = re.compile(r"<(?:bool|str|int|float|path|Path|list\[[^>]*\]|[\w-]+(?:[|,][\w-]+)+)>(?:\.\.\.)?")
#: How typer writes a required argument in the usage line.
BRACED = re.compile(r"\{[a-z_]+\}")


def _commands() -> dict[str, object]:
    """Every leaf command by its path (``"analyze gradnorm"``), as ``normexport`` hands them out."""
    group = typer.main.get_command(app)
    context = group.make_context("normexport", ["--help"], resilient_parsing=True)
    found: dict[str, object] = {}

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if not children:
            found[" ".join(path)] = command
            return
        for name in list(children):
            child = group.get_command(context, name) if command is group else children[name]
            walk(child, [*path, name])

    walk(group, [])
    return {path: (command, context) for path, command in found.items()}  # type: ignore[misc]


COMMANDS = _commands()


def _options() -> list[tuple[str, list[str], list[str], bool]]:
    """(command, long names, short names, is a flag) for every option of every command."""
    rows = []
    for path, (command, context) in COMMANDS.items():
        for param in command.get_params(context):  # type: ignore[attr-defined]
            names = [*param.opts, *param.secondary_opts]
            longs = [n for n in names if n.startswith("--")]
            shorts = [n for n in names if n.startswith("-") and not n.startswith("--")]
            if longs or shorts:
                rows.append((path, longs, shorts, bool(getattr(param, "is_flag", False))))
    return rows


def test_a_short_name_means_one_long_option_everywhere():
    meaning: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path, longs, shorts, _ in _options():
        for short in shorts:
            meaning[short].add((longs[0] if longs else "(none)", path))
    clashing = {s: sorted(uses) for s, uses in meaning.items() if len({long for long, _ in uses}) > 1}
    assert not clashing, f"a short name stands for different options: {clashing}"
    assert {long for long, _ in meaning["-f"]} == {"--format"}  # not also models' --family
    assert {long for long, _ in meaning["-o"]} == {"--output"}


def test_a_long_name_shared_by_commands_has_one_written_meaning_and_kind():
    users: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, set[bool]] = defaultdict(set)
    for path, longs, _, flag in _options():
        for long in longs[:1]:  # the option's name; later ones are its other spellings
            users[long].add(path)
            kinds[long].add(flag)
    shared = {name for name, paths in users.items() if len(paths) > 1}
    unexplained = {name: sorted(users[name]) for name in shared - set(SHARED)}
    assert not unexplained, (
        f"options now shared by several commands: {unexplained}; if each means the same thing "
        "everywhere, add it to SHARED with that meaning, otherwise rename one"
    )
    mixed = {name: sorted(users[name]) for name in shared if len(kinds[name]) > 1}
    assert not mixed, f"a flag in one command but takes a value in another: {mixed}"


def test_models_filters_by_kind_and_family_with_their_own_names():
    kind = runner.invoke(app, ["models", "--kind", "imagenet", "--family", "diracnet", "--json"])
    assert kind.exit_code == 0 and '"diracnet18"' in kind.stdout and '"diracnet_cifar16_1"' not in kind.stdout
    for old in (["models", "--dataset", "cifar"], ["models", "-f", "leno"]):
        refused = runner.invoke(app, old)
        assert refused.exit_code == 2 and "No such option" in refused.stderr, refused.output


@pytest.mark.parametrize("path", [*sorted(COMMANDS), ""])
def test_help_shows_readable_metavars(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: a metavar cannot hide across two lines
    shown = runner.invoke(app, [*path.split(), "--help"])
    assert shown.exit_code == 0, shown.output
    assert not TYPE_NAME.findall(shown.stdout), TYPE_NAME.findall(shown.stdout)
    usage = next(line for line in shown.stdout.splitlines() if "Usage:" in line)
    assert not BRACED.search(usage), usage
    if path:
        command, context = COMMANDS[path]
        for param in command.get_params(context):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False):
                assert param.metavar == "", (path, param.opts)  # a flag shows no value
            else:
                assert param.metavar and param.metavar == param.metavar.strip(), (path, param.opts)
