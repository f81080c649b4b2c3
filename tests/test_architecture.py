"""The README's architecture table against the tree: every module it names exists, and every module of the service
is named in it, so the table cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("project", "notifier")
# Covered by a directory row: the commands are listed in the README's own sections, one per thing a user does.
DIRECTORY_ROWS = ("notifier/management/commands/",)


def architecture_table() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def named_paths() -> list[str]:
    """The paths in the first cell of each row (full paths from the project root, in backticks)."""
    paths: list[str] = []
    for row in architecture_table():
        first_cell = row.split("|")[1]
        paths.extend(re.findall(r"`([^`]+)`", first_cell))
    return paths


def service_modules() -> set[str]:
    modules: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or path.name == "__init__.py":
                continue
            if relative.startswith(DIRECTORY_ROWS):
                continue
            modules.add(relative)
    return modules


def test_it_has_a_row_per_group_of_modules() -> None:
    assert len(architecture_table()) >= 20


def test_it_names_only_paths_that_exist() -> None:
    missing = [path for path in named_paths() if not (ROOT / path).exists()]
    assert missing == []


def test_it_names_every_module_of_the_service() -> None:
    named = set(named_paths())
    assert sorted(service_modules() - named) == []


def test_it_names_each_module_once() -> None:
    paths = named_paths()
    assert sorted({path for path in paths if paths.count(path) > 1}) == []


def test_the_directory_rows_are_in_the_table() -> None:
    assert set(DIRECTORY_ROWS) <= set(named_paths())


def test_the_pipeline_drawing_names_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    drawing = readme.split("\n## Architecture\n", 1)[1].split("```", 2)[1]
    paths = re.findall(r"\b((?:notifier|project)/[\w/]*(?:\.py|/))", drawing)
    assert len(paths) >= 15
    assert [path for path in paths if not (ROOT / path).exists()] == []
