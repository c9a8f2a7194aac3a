"""The README's examples are real output: this checks them, and rewrites them with --write.

An example is a fenced block whose first line is ``$ lmhead ...`` (continued
with trailing backslashes); the rest of the block is what that command prints.
A line ``...`` in the expected output skips any number of lines.

    python tests/readme_examples.py --write   # after changing what users see
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```\n(\$ lmhead .*?)```\n", re.S)


@dataclass(frozen=True)
class Example:
    command: str  # as shown, continuation lines joined
    shown: str  # the block's text after the command
    span: tuple[int, int]  # where the block's body sits in README.md


def examples(text: str) -> list[Example]:
    found = []
    for match in BLOCK.finditer(text):
        lines = match.group(1).splitlines(keepends=True)
        n = 1
        while lines[n - 1].rstrip("\n").endswith("\\"):
            n += 1
        command = " ".join(line.strip().rstrip("\\").strip() for line in lines[:n])[2:]
        found.append(Example(command, "".join(lines[n:]), match.span(1)))
    return found


def run(command: str) -> str:
    """The command's stdout, run by bash in the repository, with this interpreter's lmhead."""
    shell = command.replace("lmhead ", f"{sys.executable} -m lmhead_cli ", 1)
    out = subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    return out.stdout


def matches(shown: str, actual: str) -> bool:
    """Every shown line appears in order; ``...`` skips lines."""
    pattern = "".join(".*?" if line == "..." else re.escape(line.rstrip()) + r"\n" for line in shown.splitlines())
    return re.fullmatch(pattern, "".join(line.rstrip() + "\n" for line in actual.splitlines()), re.S) is not None


def write() -> None:
    text = README.read_text()
    for example in reversed(examples(text)):
        start, end = example.span
        head = text[start:end][: len(text[start:end]) - len(example.shown)]
        text = text[:start] + head + run(example.command) + text[end:]
    README.write_text(text)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    for example in examples(README.read_text()):
        print(("ok   " if matches(example.shown, run(example.command)) else "DIFF ") + example.command)
