"""README.md stays true: its configuration table and outputs match the program."""

from __future__ import annotations

import re

from tools import config_table
from tools.plan import run_program


def test_config_table_matches_stack_config():
    text = config_table.README.read_text(encoding="utf-8")
    assert config_table.replace_in(text, config_table.render()) == text, (
        "README.md's configuration table is out of date: run `python -m tools.config_table --write`"
    )


def test_config_table_lists_every_leaf_key():
    table = config_table.render()
    for key in ("fraudstack:environment", "fraudstack:network.azCount", "fraudstack:network.flowLogRetentionDays"):
        assert f"| `{key}` |" in table


def test_outputs_section_lists_every_export():
    text = config_table.README.read_text(encoding="utf-8")
    section = text.split("## Outputs", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", section, flags=re.M))
    assert documented == set(run_program("staging")["outputs"])


def test_quick_start_is_two_make_targets_that_exist():
    readme = config_table.README.read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make run", "make test"]
    makefile = (config_table.README.parent / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: ", makefile, flags=re.M) and re.search(r"^test: ", makefile, flags=re.M)
