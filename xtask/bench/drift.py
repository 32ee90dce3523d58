"""`cargo xtask bench drift`: Steward's drift report against Evidently's data drift preset on
the same Parquet files (reference and current, ROWS rows each, 50 mixed columns: 30 float, 10
low-cardinality integer, 10 string), each run as its own process, timed wall-clock from start
to exit, with its peak resident memory (ru_maxrss from wait4). The two reports are compared
column by column: same test, same drift flag, scores to 1e-6 relative.

usage: drift.py STEWARD_BIN WORKDIR ROWS          (the benchmark; prints one JSON line)
       drift.py --generate ROWS REFERENCE CURRENT  (writes the two files, used by the above)
       drift.py --evidently REFERENCE CURRENT OUT  (one Evidently run, used by the above)

Each step runs in its own process: a child's peak memory would otherwise include the parent's
pages at fork time.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def tables(rows, seed=7):
    """Reference and current frames; the current one shifts 10 float, 2 integer and 3 string
    columns, so that a fifth of the columns drift and the rest do not."""
    import pandas as pd

    rng = np.random.default_rng(seed)

    def make(shift):
        cols = {}
        for i in range(30):
            s = shift if i < 10 else 0.0
            kind = i % 3
            if kind == 0:
                v = rng.normal(50 + 5 * s, 10, rows)
            elif kind == 1:
                v = rng.lognormal(10 + 0.2 * s, 0.5, rows)
            else:
                v = rng.beta(2 + s, 5, rows)
            if i % 5 == 0:
                v[rng.random(rows) < 0.03] = np.nan
            cols[f"num_{i:02d}"] = v
        for i in range(10):
            k = 3 + i % 7
            p = np.full(k, 1.0 / k)
            if i < 2 and shift:
                p = np.linspace(1.0, 2.0, k)
                p /= p.sum()
            cols[f"int_{i:02d}"] = rng.choice(k, rows, p=p).astype(np.int64)
        for i in range(10):
            k = 4 + 3 * i
            vocab = np.array([f"c{i}_{j}" for j in range(k)])
            p = np.full(k, 1.0 / k)
            if i < 3 and shift:
                p = np.linspace(1.0, 3.0, k)
                p /= p.sum()
            cols[f"cat_{i:02d}"] = vocab[rng.choice(k, rows, p=p)]
        return pd.DataFrame(cols)

    return make(0.0), make(1.0)


def evidently_run(reference_path, current_path, out):
    import pandas as pd

    sys.path.insert(0, str(REPO / "tests" / "evidently"))
    from test_drift_vs_evidently import evidently_drift

    started = time.perf_counter()
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    read = time.perf_counter()
    columns, summary = evidently_drift(reference, current)
    done = time.perf_counter()
    Path(out).write_text(json.dumps({"columns": columns, "summary": summary, "read_s": read - started, "compute_s": done - read}))


def measured(cmd):
    """Runs a command to exit; its wall time (s) and peak resident memory (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {stderr}")
    return elapsed, usage.ru_maxrss / 1024.0


def main(steward, workdir, rows):
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = workdir / "reference.parquet", workdir / "current.parquet"
    subprocess.run([sys.executable, __file__, "--generate", str(rows), str(ref_path), str(cur_path)], check=True)
    steward_out, evidently_out = workdir / "steward.json", workdir / "evidently.json"
    s_time, s_mem = measured([steward, "report", "drift", "--reference", str(ref_path), "--current", str(cur_path), "--json", str(steward_out)])
    e_time, e_mem = measured([sys.executable, __file__, "--evidently", str(ref_path), str(cur_path), str(evidently_out)])
    got = {c["name"]: c for c in json.loads(steward_out.read_text())["columns"]}
    want = json.loads(evidently_out.read_text())
    mismatches = []
    worst = 0.0
    for name, (test, score, _threshold, drift) in want["columns"].items():
        c = got.get(name)
        mine = None if c is None else (c["p_value"] if c["p_value"] is not None else c["statistic"])
        if c is None or c["stattest"] != test or c["drift"] != drift:
            mismatches.append(name)
            continue
        rel = abs(mine - score) / max(abs(score), 1e-300)
        worst = max(worst, rel)
        if rel > 1e-6:
            mismatches.append(name)
    print(json.dumps({
        "rows": rows, "columns": len(want["columns"]), "drifted": sum(1 for c in got.values() if c["drift"]),
        "steward_s": s_time, "steward_mib": s_mem, "evidently_s": e_time, "evidently_mib": e_mem,
        "evidently_read_s": want["read_s"], "evidently_compute_s": want["compute_s"],
        "parquet_mib": (ref_path.stat().st_size + cur_path.stat().st_size) / 2**20,
        "agree": not mismatches and set(got) == set(want["columns"]), "mismatches": mismatches, "max_rel_diff": worst,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "--evidently":
        evidently_run(*sys.argv[2:5])
    elif sys.argv[1] == "--generate":
        reference, current = tables(int(sys.argv[2]))
        reference.to_parquet(sys.argv[3], index=False)
        current.to_parquet(sys.argv[4], index=False)
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
