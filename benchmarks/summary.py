#!/usr/bin/env python
"""The README's performance numbers, generated from the committed benchmark JSON files.

Nothing in the README's "Performance" section between ``<!-- bench:NAME -->`` markers is typed by
hand: this script writes each block from ``benchmarks/results*.json``, and
``tests/test_readme.py`` checks that the README matches.

    python benchmarks/summary.py            # rewrite the README blocks
    python benchmarks/summary.py --check    # exit 1 if they differ
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
POPULATION = ("results.json", "results_2threads.json")  # bench_population.py at 1 and 2 threads
CNN = "results_cnn.json"  # bench_cnn_population.py
MARK, END = "<!-- bench:{name} -->", "<!-- /bench:{name} -->"


def _load(name: str) -> dict | None:
    path = HERE / name
    return json.loads(path.read_text()) if path.is_file() else None


def population_block(files: tuple[str, ...] = POPULATION) -> str:
    """One row per workload and thread count: lrlab in the mode auto picks, JAX, the plain loop."""
    lines = ["| workload | threads | lrlab (auto → mode) | JAX | plain torch loop | lrlab speed ÷ JAX "
             "| lrlab speed ÷ loop |", "|---|---|---|---|---|---|---|"]
    sources = []
    for name in files:
        data = _load(name)
        if data is None:
            continue
        env = data["env"]
        sources.append(f"`benchmarks/{name}` ({env['date'][:10]}, {env['cpu']}, XLA_FLAGS "
                       f"`{env.get('xla_flags') or 'unset'}`)")
        for res in data["results"]:
            rows = {r["impl"]: r for r in res["rows"]}
            auto = rows["lrlab auto"]
            mode = auto["note"].removeprefix("ran as ")
            # auto runs exactly the code path of its mode: report that mode's best time
            lr_s = rows.get(f"lrlab {mode}", auto)["best_s"]
            jax_s = rows["jax"]["best_s"] if "jax" in rows else math.nan
            loop_s = rows["torch loop"]["best_s"]
            jax_cell = "–" if math.isnan(jax_s) else f"{jax_s:.2f} s"
            ratio = "–" if math.isnan(jax_s) else f"{jax_s / lr_s:.2f}"
            lines.append(f"| {res['workload']['name']} | {res['threads']} | {lr_s:.2f} s ({mode}) | {jax_cell} | "
                         f"{loop_s:.2f} s | {ratio} | {loop_s / lr_s:.2f} |")
    if not sources:
        return "No population benchmark results are committed."
    return "\n".join(lines + ["", "From " + "; ".join(sources) + ". Best of the repeats; a ratio above 1 "
                              "means lrlab is faster."])


def cnn_block(name: str = CNN) -> str:
    """CNN populations: each variant's training images/s per member against loop mode, one process."""
    data = _load(name)
    if data is None:
        return "No CNN population benchmark results are committed."
    lines = ["| threads | members | variant | images/s per member | speed × loop mode |", "|---|---|---|---|---|"]
    for r in data["runs"]:
        for variant, rate in r["img_s_per_member"].items():
            lines.append(f"| {r['threads']} | {r['members']} | {variant} | {rate:,.0f} | "
                         f"{r['ratio_vs_loop'][variant]:.2f} |")
    cpu = data.get("cpu", "cpu not recorded")
    return "\n".join(lines + ["", f"From `benchmarks/{name}` ({data['date'][:10]}, {cpu}, {data['data']} images)."])


BLOCKS = {"population": population_block, "cnn": cnn_block}


def update_readme(readme: Path = README, check: bool = False) -> list[str]:
    """Rewrite every ``bench:NAME`` block of ``readme``; return the names whose text changed."""
    text = readme.read_text()
    changed = []
    for name, make in BLOCKS.items():
        start, end = MARK.format(name=name), END.format(name=name)
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
        if not pattern.search(text):
            continue
        new = f"{start}\n{make()}\n{end}"
        if pattern.search(text).group(0) != new:
            changed.append(name)
            text = pattern.sub(lambda _m, new=new: new, text)
    if changed and not check:
        tmp = readme.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(readme)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only report blocks that differ (exit 1 if any)")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    changed = update_readme(args.readme, check=args.check)
    verb = "differ" if args.check else "rewritten"
    print(f"{', '.join(changed) or 'no'} block(s) {verb}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
