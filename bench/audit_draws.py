"""One row of the guarantee benchmark under other draws of the audit sample.

The benchmark has no seed: the audit sample is systematic, and its start comes from the process's
name (``schemas/sampling.py``), so every run audits the same steps. This reruns the ``selauto`` gate
of one (log, target) row with the start drawn under other salts. At a 4% rate, starts in the same
twenty-fifth of [0, 1) audit the same steps, so each run records its start's phase
(``floor(start / rate)``, 0-24) and a repeated phase repeats a row exactly.

Usage: python -m bench.audit_draws [--log bpi2012w] [--target 0.95] [--seeds default 3 4 5]
Writes bench/results/audit_draws_<log>_<target>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.bench_guarantee import Prepared, row_of, run_learning
from bench.bench_quality import processes_of
from selective_autonomy.demo.offline_loop import OfflineLoopConfig
from selective_autonomy.schemas import sampling

RESULTS = Path(__file__).parent / "results"


def salted_start(seed: str) -> Any:
    """``sampling.audit_start`` under another salt; ``default`` is the product's own."""
    product = sampling.audit_start
    if seed == "default":
        return product
    return lambda scope: sampling._draw(f"seed{seed}\x1f{sampling._AUDIT_SALT}", scope)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", default="bpi2012w")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seeds", nargs="+", default=["default", "3", "4", "5"])
    parser.add_argument("--audit-rate", type=float, default=0.04)
    parser.add_argument("--relearn-every", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ((schema, cases),) = processes_of(args.log, None, 1)
    prepared = Prepared(schema, cases)
    config = OfflineLoopConfig(audit_rate=args.audit_rate, relearn_every=args.relearn_every)
    product = sampling.audit_start
    rows: list[dict[str, Any]] = []
    try:
        for seed in args.seeds:
            start = salted_start(seed)
            sampling.audit_start = start  # SystematicSample reads the module's function at each pick
            started = time.monotonic()
            report, extra = run_learning(prepared, args.target, "selauto", config)
            # With 1/rate whole, the picks depend on floor(start / rate) alone (systematic_pick).
            phase = int(start(schema.process_id) / args.audit_rate) if args.audit_rate > 0 else None
            row = row_of(
                args.log,
                args.target,
                "selauto",
                [report],
                {**extra, "seed": seed, "phase": phase, "seconds": round(time.monotonic() - started, 1)},
            )
            rows.append(row)
            print(
                f"seed {seed} phase {phase}: precision {row['realised_precision']:.4f} coverage {row['coverage']:.4f} "
                f"audits {row['audit_share']:.4f}",
                flush=True,
            )
    finally:
        sampling.audit_start = product
    out = args.out or RESULTS / f"audit_draws_{args.log}_{args.target:.2f}.json"
    payload = {
        "benchmark": "audit_draws",
        "command": f"python -m bench.audit_draws --log {args.log} --target {args.target} "
        f"--seeds {' '.join(args.seeds)}",
        "audit_rate": args.audit_rate,
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
