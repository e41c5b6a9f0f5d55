"""Communication overhead of the optimizer plugins against a bare mpi4py Allreduce.

In one mpiexec job per cluster size (2 and 4 ranks by default) this measures,
per iteration, the time an algorithm spends inside MPI (what ``bench sweep``
records as comm_time_s) and, on alternate iterations of the same algorithm, the
time of a bare ``MPI.COMM_WORLD.Allreduce`` of the same float64 buffers put in
place of the plugin's communicator. Same computation around both, same buffers,
same machine load; only the communication layer differs. Both put a barrier
before each collective (the plugin via ``separate_wait``), so waiting for slower
ranks is excluded from both. Target: ratio <= 1.10.

    .venv/bin/python benchmarks/bench_comm_overhead.py [--ranks 2,4] [--floats 100,100000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGET = 1.10


def interquartile_mean(values) -> float:
    """Mean of the middle half: with more ranks than cores, collective times spread over
    milliseconds of scheduling noise, and this is steadier than the median."""
    import numpy as np

    ordered = np.sort(np.asarray(values))
    quarter = len(ordered) // 4
    return float(ordered[quarter:len(ordered) - quarter].mean())


def rank_side(args: argparse.Namespace) -> None:
    """Inside the MPI job: interleave algorithm iterations and bare Allreduces."""
    from plugins.optimizers.mpi_runtime import world

    comm = world(separate_wait=True)
    import numpy as np
    from mpi4py import MPI

    from harness.plugins.manager import get_plugin_manager
    from harness.specs import parse_options
    from plugins.optimizers import linear

    loss = linear.LOSSES["logistic"]
    results = {}
    for d in args.floats:
        # Sparse rows keep the data small while the exchanged vector has d floats.
        opts = {"file": "", "n": 64 * comm.size, "d": d, "density": min(1.0, 50 / d),
                "cond": 10.0, "noise": 0.5, "seed": 0, "lam": 1e-3}
        start, stop = linear.shard(opts["n"], comm.rank, comm.size)
        X, y = linear.synthetic_rows(opts, loss, start, stop)
        with comm.excluded():
            problem = linear.LinearProblem("logreg", loss, X, y, n=opts["n"], offset=start,
                                           lam=opts["lam"], comm=comm, f_star=None, info={})
            spec = get_plugin_manager().optimizer(args.optimizer)
            algorithm = spec.factory(problem, comm, parse_options(
                spec.hyperparameters, [], spec.name))
        timed_alg, timed_bare = [], []

        def bare_allreduce(send, recv, op="sum"):
            comm.raw.Barrier()
            begin = time.perf_counter()
            comm.raw.Allreduce(send, recv, op=MPI.SUM)
            timed_bare.append(time.perf_counter() - begin)
            return recv

        for t in range(2 * args.iterations):
            if t % 2:  # the same algorithm, talking through bare mpi4py
                comm.allreduce = bare_allreduce
                algorithm.step(t)
                del comm.allreduce
                continue
            comm.reset()
            algorithm.step(t)
            if comm.calls != 1:
                raise SystemExit(f"{args.optimizer} made {comm.calls} collectives per "
                                 "iteration; this benchmark compares one")
            timed_alg.append(comm.comm_time)
        # The slowest rank's time per iteration, as bench sweep reports comm_time_s.
        alg = np.array(timed_alg)
        bare = np.array(timed_bare)
        comm.raw.Allreduce(MPI.IN_PLACE, alg, op=MPI.MAX)
        comm.raw.Allreduce(MPI.IN_PLACE, bare, op=MPI.MAX)
        results[d] = {"algorithm_s": interquartile_mean(alg), "bare_s": interquartile_mean(bare)}
    if comm.rank == 0:
        print(json.dumps(results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="2,4")
    parser.add_argument("--floats", default="100,100000",
                        help="vector lengths (the problem's d), comma-separated")
    parser.add_argument("--optimizer", default="minibatch-sgd")
    parser.add_argument("--iterations", type=int, default=1500,
                        help="iterations measured of each kind (they alternate)")
    parser.add_argument("--rank-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.floats = [int(x) for x in str(args.floats).split(",")]
    if args.rank_side:
        rank_side(args)
        return
    mpiexec = Path(sys.executable).parent / "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    print(f"optimizer {args.optimizer}: comm time per iteration (slowest rank, interquartile "
          "mean) vs a bare "
          f"Allreduce of the same floats; {args.iterations} iterations of each, alternating")
    print(f"{'ranks':>5} {'floats':>8} {'algorithm us':>13} {'bare us':>9} {'ratio':>6}  target")
    worst = 0.0
    for ranks in [int(r) for r in args.ranks.split(",")]:
        cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-P", __file__, "--rank-side",
               "--floats", ",".join(map(str, args.floats)), "--optimizer", args.optimizer,
               "--iterations", str(args.iterations)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if out.returncode != 0:
            sys.exit(f"mpiexec -n {ranks} failed:\n{out.stderr}")
        results = json.loads(out.stdout.strip().splitlines()[-1])
        for d, r in results.items():
            ratio = r["algorithm_s"] / r["bare_s"]
            worst = max(worst, ratio)
            print(f"{ranks:>5} {int(d):>8} {r['algorithm_s'] * 1e6:>13.1f} "
                  f"{r['bare_s'] * 1e6:>9.1f} {ratio:>6.3f}  <= {TARGET:.2f} "
                  f"{'ok' if ratio <= TARGET else 'MISSED'}")
    print(f"worst ratio {worst:.3f} (target <= {TARGET:.2f})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
