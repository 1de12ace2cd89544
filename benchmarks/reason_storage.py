"""Bytes a published run keeps for its reasons: the score table's text parts and the explanations.

    python -m benchmarks.reason_storage STORE_FOLDER

For each run folder of the store (runs/<run_id>__<token>/), the file sizes of `scores/numbers.parquet`,
`scores/texts-*.parquet` and `explanations/part-*.parquet`, and per column the compressed bytes
Parquet records for it (column chunk metadata), so the `reasons` JSON and each language's text
can be told apart. Reads only Parquet footers.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq


def column_bytes(files: list[Path]) -> dict[str, int]:
    """Compressed bytes per column over the row groups of `files`."""
    sizes: dict[str, int] = defaultdict(int)
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for column in range(row_group.num_columns):
                chunk = row_group.column(column)
                sizes[chunk.path_in_schema] += chunk.total_compressed_size
    return dict(sizes)


def run_sizes(folder: Path) -> dict:
    """File bytes and column bytes of one run folder."""
    numbers = [folder / "scores" / "numbers.parquet"]
    texts = sorted((folder / "scores").glob("texts-*.parquet"))
    explanations = sorted((folder / "explanations").glob("part-*.parquet"))
    return {
        "run": folder.name,
        "rows": {"scores": pq.ParquetFile(numbers[0]).metadata.num_rows,
                 "explanations": sum(pq.ParquetFile(p).metadata.num_rows for p in explanations)},
        "file_bytes": {kind: sum(p.stat().st_size for p in files)
                       for kind, files in (("numbers", numbers), ("texts", texts), ("explanations", explanations))},
        "texts_columns": column_bytes(texts),
        "explanations_columns": column_bytes(explanations),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="the store folder (<CUSTSCORE_HOME>/store)")
    args = parser.parse_args(argv)
    for folder in sorted((args.store / "runs").iterdir()):
        if (folder / "scores" / "numbers.parquet").exists():
            print(json.dumps(run_sizes(folder), indent=1))


if __name__ == "__main__":
    main()
