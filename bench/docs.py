"""Sections of docs/BENCHMARKS.md that the benchmark scripts own, between markers.

Each script rewrites only the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``; everything else in the file (other engineers' sections, any
machine-readable block) is kept byte for byte. A missing section is appended under
its heading.

    python -m bench.run | python -m bench.docs service-bench "Service benchmark: /v1/score (issue 7)"
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def replace_section(name: str, body: str, heading: str, path: Path = DOCS) -> None:
    """Put ``body`` between the markers of section ``name`` (appended under ``heading`` if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.docs SECTION-NAME HEADING < body.md")
    replace_section(sys.argv[1], sys.stdin.read(), sys.argv[2])
