"""Join the results of several benchmark runs (say one per N, each on a fresh endpoint) into one
table and one plot of seconds against N.

    python -m bench.combine bench/results/seaweedfs-n10000.json bench/results/seaweedfs-n100000.json \
        --name seaweedfs-n10000-100000

Meta data (machine, tools, start time) is taken from the first file; sizes and load averages of
all are listed; the merge-join numbers come from the first file that has them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_all  # noqa: E402
from bench.tools import Result  # noqa: E402

RESULT_FIELDS = set(Result.__dataclass_fields__)


def load(paths: list[Path]) -> tuple[list[Result], dict[str, Any], dict[str, Any] | None, dict[str, str]]:
    """Results of every file, and the first file's meta data with all sizes and start times."""
    results: list[Result] = []
    meta: dict[str, Any] = {}
    merge_join = None
    skipped: dict[str, str] = {}
    for path in paths:
        document = json.loads(path.read_text())
        results += [Result(**{k: v for k, v in r.items() if k in RESULT_FIELDS}) for r in document["results"]]
        if not meta:
            meta = dict(document["meta"])
            meta["sizes"], starts = [], []
        meta["sizes"] += document["meta"]["sizes"]
        meta["tools"] = document["meta"]["tools"] | meta["tools"]
        starts.append(document["meta"]["started"])
        merge_join = merge_join or document.get("merge_join")
        skipped |= document.get("skipped", {})
    meta["started"] = " and ".join(starts) + f" ({len(paths)} runs, one endpoint each)"
    return results, meta, merge_join, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--name", required=True, help="results file name, without extension")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    results, meta, merge_join, skipped = load(args.files)
    for path in write_all(args.out, args.name, results, meta, merge_join, skipped):
        print(f"== wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
