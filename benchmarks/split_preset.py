"""Cut a preset into one experiment file per compare entry (or per group of entry labels), for parallel
processes or an ordered queue writing into one results folder.

Every file keeps the preset's name and settings, so each run's resolved config and config hash are the
preset's own: running the whole preset into the folder afterwards finds every run *done* (how the
committed folders made on the lent GPU and the Hsu folder were assembled; docs/architecture.md,
"Committed results"). ``published`` cells are cut to the kept labels (they are not part of the hash).

    python benchmarks/split_preset.py experiments/strategies-clinc150.yaml OUT_DIR clinc
    python benchmarks/split_preset.py experiments/hsu2018-split-mnist-class-il.yaml OUT_DIR class \\
        --groups "adam sgd l2" "ewc online-ewc"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from clft.config.entries import parse_entry


def entry_name(entry) -> str:
    """The entry's label as clft names its row and folder (``clft.config.entries``: its label, else its strategies)."""
    return parse_entry(entry, "compare").label


def cut(raw: dict, keep: list[str]) -> dict:
    """The experiment with only the compare entries named in ``keep`` (labels or strategy names)."""
    entries = [e for e in raw["compare"] if entry_name(e) in keep]
    missing = set(keep) - {entry_name(e) for e in entries}
    if missing:
        raise SystemExit(f"split_preset: no compare entry {sorted(missing)}")
    one = dict(raw, compare=entries)
    if "published" in raw:
        cells = raw["published"].get("cells", {})
        one["published"] = dict(raw["published"], cells={s: {k: v for k, v in row.items() if k in keep}
                                                         for s, row in cells.items()})
    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("tag")
    parser.add_argument("--groups", nargs="+", help="space-separated entry names per file (default: one per entry)")
    args = parser.parse_args()
    raw = yaml.safe_load(args.preset.read_text())
    groups = [g.split() for g in args.groups] if args.groups else [[entry_name(e)] for e in raw["compare"]]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for index, keep in enumerate(groups):
        path = args.out_dir / f"{args.tag}-{index:02d}.yaml"
        path.write_text(yaml.safe_dump(cut(raw, keep), sort_keys=False))
        print(path, " ".join(keep))


if __name__ == "__main__":
    main()
