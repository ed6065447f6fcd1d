"""The README's configuration table, generated from ``StackConfig`` so it cannot drift.

    python -m tools.config_table           # print the table
    python -m tools.config_table --write   # rewrite it in README.md between the markers

A test fails when README.md and ``StackConfig`` disagree: run ``--write`` after adding a key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.config import config_reference

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def render() -> str:
    """The markdown table of every config key."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, kind, default, description in config_reference():
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{key}` | {kind} | {default} | {escaped} |")
    return "\n".join(lines)


def replace_in(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README.md lacks the {START} ... {END} markers")
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into README.md."""
    parser = argparse.ArgumentParser(prog="python -m tools.config_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    if args.write:
        README.write_text(replace_in(README.read_text(encoding="utf-8"), render()), encoding="utf-8")
    else:
        print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
