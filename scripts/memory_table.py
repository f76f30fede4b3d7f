"""Print the GPU memory table of docs/deployment.md (and the README) from `gad.training.memory_report`.

    .venv/bin/python scripts/memory_table.py            # the markdown, to paste between the markers
    .venv/bin/python scripts/memory_table.py --write    # replace the block in every file that has them

A file holds the block between `<!-- memory-table:start -->` and `<!-- memory-table:end -->`
(docs/deployment.md always; README.md once the markers are added there); tests/test_memory.py fails
when a block differs from what this prints, so the table cannot go stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from gad.training.memory_report import table_markdown  # noqa: E402

START, END = "<!-- memory-table:start -->", "<!-- memory-table:end -->"
DOCS = (REPO / "docs" / "deployment.md", REPO / "README.md")


def replace_block(text: str, table: str) -> str:
    """`text` with the block between the markers replaced by `table`."""
    if START not in text or END not in text:
        raise ValueError(f"markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu-gb", type=float, default=80.0, help="Memory of one GPU in GB (1e9 bytes).")
    p.add_argument("--write", action="store_true", help="Rewrite the block in docs/deployment.md and README.md "
                   "(where the markers are).")
    ns = p.parse_args(argv)
    table = table_markdown(ns.gpu_gb)
    if ns.write:
        for doc in DOCS:
            text = doc.read_text(encoding="utf-8")
            if START in text:
                doc.write_text(replace_block(text, table), encoding="utf-8")
                print(f"updated {doc}")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
