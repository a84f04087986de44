"""README.md runs as written: every ```python and ```console block, in order, in one fresh directory.

The blocks run top to bottom in one temporary directory that holds nothing but what earlier
blocks wrote, as a reader going through the README would run them:

* ```python blocks run in one Python process, in one namespace (a name defined in one block is
  there in the next), so torch is imported once;
* in a ```console block every line that starts with ``$ `` is a shell command, run with the
  virtual environment's ``normexport`` first on ``PATH``; the lines after it, up to the next
  ``$ `` line, are its output as the README shows it. The output's *shape* must match: the first
  word of every shown line (two words for ``error:``/``PASS:``/``FAIL:`` lines), in order, must be
  among the first words of the real output (numbers and table rules match any number and rule;
  a line that starts with ``…`` stands for lines left out). A command whose shown output has an
  ``error:`` or ``FAIL`` line must exit non-zero, any other zero.
* A block that cannot run here (a server that keeps running, a GPU, a download, a path the reader
  supplies, minutes of work) is preceded, on the line right before its fence, by
  ``<!-- readme-test: skip (the reason) -->``.

A failure names the README line of the block (or of the command, or of the Python line that
raised).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: The marker, on the line right before a fence, that keeps a block from running; the reason is required.
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
_ANY_MARKER = re.compile(r"^\s*<!--\s*readme-test:")  # a marker stands on its own line
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
#: The languages that run; every other fence (text, bash, json, …) is shown, not run.
RUN = ("python", "console")
#: Seconds one command or one Python block may take before the test gives up on it.
BLOCK_TIMEOUT = 240
_VERDICT_WORDS = ("error:", "PASS:", "FAIL:", "warning:", "note:")
_NUMBER = re.compile(r"[-+]?[\d.,]+(e[-+]?\d+)?(%|s|×)?")
_RULE = set("─━│┃╇╈┼╋┏┓┗┛┡┩└┘├┤┬┴╭╮╯╰═║╔╗╚╝╠╣╦╩╬ ")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README.

    Attributes:
        line: The 1-based line of its opening fence.
        lang: The fence's language (``python``, ``console``, ``text``, …).
        text: Its content, dedented to the fence's indentation.
        skip: The reason given by a skip marker right before the fence, else ``None``.
    """

    line: int
    lang: str
    text: str
    skip: str | None = None


@dataclass
class Command:
    """One ``$ `` line of a console block and the output the README shows for it."""

    line: int
    command: str
    shown: list[str] = field(default_factory=list)

    @property
    def fails(self) -> bool:
        """Whether the README shows it failing (an ``error:`` or ``FAIL`` line)."""
        return any(line.strip().startswith(("error:", "FAIL")) for line in self.shown)


def parse_blocks(markdown: str, *, source: str = "README.md") -> list[Block]:
    """Every fenced block of ``markdown``, with its line and skip reason.

    Raises:
        AssertionError: A fence that is never closed, or a skip marker without a reason or not
            right before a fence.
    """
    lines = markdown.splitlines()
    blocks: list[Block] = []
    fences: set[int] = set()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent = opening["indent"]
        end = next(
            (
                j
                for j in range(index + 1, len(lines))
                if lines[j].strip() == "```" and lines[j].startswith(indent)
            ),
            None,
        )
        assert end is not None, f"{source}:{index + 1}: this ``` fence is never closed"
        before = lines[index - 1].strip() if index else ""
        marker = SKIP_MARKER.fullmatch(before)
        body = "\n".join(
            line[len(indent) :] if line.startswith(indent) else line for line in lines[index + 1 : end]
        )
        blocks.append(
            Block(index + 1, opening["lang"], textwrap.dedent(body), marker["reason"] if marker else None)
        )
        fences.add(index)
        index = end + 1
    for number, line in enumerate(lines):
        if _ANY_MARKER.search(line):
            assert SKIP_MARKER.fullmatch(line.strip()), (
                f"{source}:{number + 1}: a readme-test marker is written <!-- readme-test: skip (reason) -->"
            )
            assert number + 1 in fences, (
                f"{source}:{number + 1}: a skip marker must be the line right before a fence"
            )
    return blocks


def parse_commands(block: Block) -> list[Command]:
    """The ``$ `` commands of a console block (a line ending in ``\\`` continues on the next)."""
    commands: list[Command] = []
    pending = False
    for offset, line in enumerate(block.text.splitlines()):
        if pending:
            commands[-1].command = commands[-1].command[:-1].rstrip() + " " + line.strip()
        elif line.startswith("$ "):
            commands.append(Command(block.line + 1 + offset, line[2:].strip()))
        elif commands:
            commands[-1].shown.append(line)
        elif line.strip():
            raise AssertionError(
                f"README.md:{block.line + 1 + offset}: output before the block's first $ line"
            )
        pending = bool(commands) and commands[-1].command.endswith("\\")
    return commands


def _word(word: str) -> str:
    if set(word) <= _RULE:
        return "─"
    return "#" if _NUMBER.fullmatch(word) else word


def shape(lines: list[str]) -> list[str]:
    """The words an output is compared by: per line, its first word (two for a verdict line)."""
    words = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("…") or text == "...":
            continue
        parts = text.split()
        count = 2 if parts[0] in _VERDICT_WORDS and len(parts) > 1 else 1
        words.append(" ".join(_word(part) for part in parts[:count]))
    return words


def missing_shape(shown: list[str], output: str) -> str | None:
    """The first shown line whose shape the real output lacks (in order), else ``None``."""
    actual = shape(output.splitlines())
    position = 0
    for expected in shape(shown):
        try:
            position = actual.index(expected, position) + 1
        except ValueError:
            return expected
    return None


_WORKER = r"""
import contextlib, json, sys, traceback
namespace = {"__name__": "__readme__"}
reply = sys.stdout
for message in sys.stdin:
    block = json.loads(message)
    code = "\n" * block["line"] + block["code"]  # so tracebacks give README line numbers
    try:
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(code, "README.md", "exec"), namespace)
        answer = {"ok": True}
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "README.md"]
        answer = {
            "ok": False,
            "line": frames[-1].lineno if frames else block["line"],
            "error": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
        }
    reply.write(json.dumps(answer) + "\n")
    reply.flush()
"""


class PythonSession:
    """One Python process that runs the README's python blocks, one after the other, in one namespace."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self._log = log.open("w")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._process.stdout, selectors.EVENT_READ)

    def run(self, block: Block) -> str | None:
        """Run one block; the failure as ``README.md:LINE: error``, or ``None``."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"line": block.line, "code": block.text}) + "\n")
        self._process.stdin.flush()
        if not self._selector.select(timeout=BLOCK_TIMEOUT):
            return f"README.md:{block.line}: the python block ran longer than {BLOCK_TIMEOUT} s"
        answer = self._process.stdout.readline()
        if not answer:
            return f"README.md:{block.line}: the python process ended (see {self._log.name})"
        result = json.loads(answer)
        return None if result["ok"] else f"README.md:{result['line']}: {result['error']}"

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        self._log.close()


def _environment() -> dict[str, str]:
    """The reader's shell: the venv's ``normexport`` first on PATH, wide tables, no colours."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})
    return env


def run_command(command: Command, cwd: Path, env: dict[str, str]) -> str | None:
    """Run one ``$ `` line; the failure as ``README.md:LINE: what differs``, or ``None``."""
    where = f"README.md:{command.line}: `{command.command}`"
    try:
        done = subprocess.run(
            ["bash", "-c", command.command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"{where} ran longer than {BLOCK_TIMEOUT} s"
    output = done.stdout
    tail = "\n    ".join(output.strip().splitlines()[-6:])
    if "Traceback (most recent call last)" in output:
        return f"{where} ended in a traceback:\n    {tail}"
    if command.fails and done.returncode == 0:
        return f"{where} succeeded, but the README shows it failing"
    if not command.fails and done.returncode != 0:
        return f"{where} exited with {done.returncode}:\n    {tail}"
    lacking = missing_shape(command.shown, output)
    if lacking is not None:
        return f"{where}: the README shows a line starting {lacking!r} that the output lacks:\n    {tail}"
    return None


# ----------------------------------------------------------------------------------------- the README


def test_every_readme_example_runs_in_order(tmp_path):
    blocks = [b for b in parse_blocks(README.read_text(encoding="utf-8")) if b.lang in RUN]
    assert blocks, "README.md has no python or console blocks"
    work = tmp_path / "reader"
    work.mkdir()
    env = _environment()
    session = PythonSession(work, env, tmp_path / "python-blocks.log")
    failures = []
    try:
        for block in blocks:
            if block.skip is not None:
                continue
            if block.lang == "python":
                failure = session.run(block)
                failures += [failure] if failure else []
            else:
                for command in parse_commands(block):
                    failure = run_command(command, work, env)
                    failures += [failure] if failure else []
    finally:
        session.close()
    assert not failures, (
        "README examples that do not run as shown (the first may cause the rest):\n" + "\n".join(failures)
    )


# ----------------------------------------------------------------------------------------- the harness

_SAMPLE = """\
# title

```python
x = 1
```

<!-- readme-test: skip (a server that keeps running) -->
```console
$ normexport serve m.onnx
```

* a list
  ```console
  $ normexport models 'resnet2*' \\
      --json
  [
  $ normexport predict m.onnx x.png --device gpu
  error: Invalid value for '--device'
  ```
"""


def test_blocks_are_found_with_their_lines_and_skip_reasons():
    blocks = parse_blocks(_SAMPLE)
    assert [(b.line, b.lang, b.skip) for b in blocks] == [
        (3, "python", None),
        (8, "console", "a server that keeps running"),
        (13, "console", None),
    ]
    first, second = parse_commands(blocks[2])
    assert (first.line, first.command, first.shown, first.fails) == (
        14,
        "normexport models 'resnet2*' --json",
        ["["],
        False,
    )
    assert second.line == 17 and second.fails


def test_a_malformed_marker_or_an_open_fence_is_an_error():
    with pytest.raises(AssertionError, match=r"README.md:1: .*readme-test: skip \(reason\)"):
        parse_blocks("<!-- readme-test: skip -->\n```console\n$ x\n```\n")
    with pytest.raises(
        AssertionError, match=r"README.md:1: a skip marker must be the line right before a fence"
    ):
        parse_blocks("<!-- readme-test: skip (why) -->\n\n```console\n$ x\n```\n")
    with pytest.raises(AssertionError, match=r"README.md:2: this ``` fence is never closed"):
        parse_blocks("text\n```python\nx = 1\n")


def test_output_shape_compares_first_words_in_order():
    shown = [
        " name      ┃ family ┃     params",
        "━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━",
        " resnet20  │ torch  │    272,474",
        " …",
        "PASS: max |Δ| 2.38e-06",
    ]
    real = (
        "noise\n name ┃ family ┃ params\n━━━╇━━━\n resnet20 │ t │ 1\n resnet32 │ t │ 2\nPASS: max |Δ| 1e-07\n"
    )
    assert missing_shape(shown, real) is None
    assert missing_shape(shown, real.replace("resnet20", "resnet44")) == "resnet20"
    assert missing_shape(shown, real.replace("PASS", "FAIL")) == "PASS: max"
    assert missing_shape(shown[2:3] + shown[0:1], real) == "name"  # order matters


def test_a_command_is_held_to_its_exit_code_and_output(tmp_path):
    env = _environment()
    assert run_command(Command(5, "echo hello world", ["hello there"]), tmp_path, env) is None
    assert "README.md:5: `false` exited with 1" in run_command(Command(5, "false"), tmp_path, env)
    shown_failing = Command(7, "echo fine", ["error: something"])
    assert "succeeded, but the README shows it failing" in run_command(shown_failing, tmp_path, env)
    assert "lacks" in run_command(Command(9, "echo other", ["hello"]), tmp_path, env)


def test_a_python_block_failure_names_its_readme_line(tmp_path):
    session = PythonSession(tmp_path, _environment(), tmp_path / "log")
    try:
        assert session.run(Block(10, "python", "value = 41\n")) is None
        assert session.run(Block(20, "python", "assert value == 41\nvalue + undefined\n")) == (
            "README.md:22: NameError: name 'undefined' is not defined"
        )
    finally:
        session.close()
