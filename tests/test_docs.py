"""Every ```python block in the README and the docs runs as a reader runs it.

A page's blocks are put together, in order, into one script, which runs in a fresh folder with
no ``RHEOS_*`` variable set -- the default data directory ``./.rheos`` -- in a process of its
own; then it runs a second time in the same folder, as a reader who tries a page again does.
A block whose first line is ``# not run`` is left out (for code that runs forever, say).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return [b for b in BLOCK.findall(page.read_text()) if not b.startswith("# not run")]


def reader_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RHEOS_")}


@pytest.mark.parametrize(
    "page", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_page_examples_run_twice_in_a_fresh_folder(page: Path, tmp_path: Path) -> None:
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks(page)))
    for attempt in ("first", "second"):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=reader_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            f"{page.name}, {attempt} run in {tmp_path}:\n{done.stdout}\n{done.stderr}"
        )
