"""``python -m vagram_bench.envs``: print the table of registered ids (``--write-table docs/envs.md`` updates the generated table there)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from vagram_bench.envs import markdown_table

START, END = "<!-- env-table:start -->", "<!-- env-table:end -->"


def write_table(path: Path) -> None:
    """Replace the text between the env-table markers of ``path`` by :func:`markdown_table`."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no '{START}' ... '{END}' block")
    path.write_text(pattern.sub(lambda _: f"{START}\n{markdown_table()}\n{END}", text, count=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vagram_bench.envs", description=__doc__)
    parser.add_argument("--write-table", type=Path, metavar="MARKDOWN",
                        help="rewrite the env-table block of a Markdown file (docs/envs.md)")
    args = parser.parse_args(argv)
    if args.write_table is not None:
        write_table(args.write_table)
    else:
        print(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
