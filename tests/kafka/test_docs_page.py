"""The Kafka page's examples, run as a reader runs them, against the test broker.

``tests/test_docs.py`` leaves them out (they need a broker); here the blocks marked for this
test are put together into one script that runs twice in a fresh folder, as there, with
``KAFKA_BOOTSTRAP_SERVERS`` naming the broker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_docs import BLOCK, reader_env

PAGE = Path(__file__).resolve().parent.parent.parent / "docs" / "how-to" / "kafka.md"
MARK = "# not run: needs a Kafka broker (tests/kafka/test_docs_page.py runs it against one)\n"


def test_the_kafka_page_runs_twice_against_a_broker(kafka: str, tmp_path: Path) -> None:
    blocks = [b.removeprefix(MARK) for b in BLOCK.findall(PAGE.read_text()) if b.startswith(MARK)]
    assert len(blocks) >= 2
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks))
    for attempt in ("first", "second"):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env={**reader_env(), "KAFKA_BOOTSTRAP_SERVERS": kafka},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{attempt} run in {tmp_path}:\n{done.stdout}\n{done.stderr}"
        assert "'key': 'u0'" in done.stdout, done.stdout
