"""Built-in distributed optimization algorithms and the ``bench sweep`` command.

Entry point ``algorithms``. The algorithms themselves live in
:mod:`plugins.optimizers.methods` and are imported only inside MPI ranks.
"""
from __future__ import annotations

from typing import Any

from harness import OptimizerSpec, OptionSpec, hookimpl
from plugins.optimizers.protocol import (
    AUTO,
    auto_or_nonnegative_int,
    auto_or_positive_float,
    fraction,
    momentum_value,
    nonnegative_float,
    positive_float,
    positive_int,
)

LINEAR = ("logreg", "svm", "lsq")

LR = OptionSpec("lr", auto_or_positive_float, AUTO,
                "step size; auto: 1/L for the batch size (the problem's smoothness)")
LR_DECAY = OptionSpec("lr_decay", nonnegative_float, 0.0, "step at iteration t: lr / (1 + lr_decay t)")
SEED = OptionSpec("seed", int, 0, "sampling seed")
LOCAL_PASSES = OptionSpec("local_passes", positive_float, 1.0,
                          "local SDCA steps per iteration, in passes over the rank's rows")


def _factory(name: str):
    def build(problem: Any, comm: Any, hyperparameters: dict[str, Any]) -> Any:
        from plugins.optimizers import methods

        return getattr(methods, name)(problem, comm, hyperparameters)

    build.__name__ = name
    return build


@hookimpl
def bench_optimizers() -> list[OptimizerSpec]:
    return [
        OptimizerSpec(
            "minibatch-sgd",
            "synchronous minibatch SGD: every rank computes its share of one global batch, "
            "gradients are summed",
            (LR, OptionSpec("batch", auto_or_nonnegative_int, AUTO,
                            "global batch size (0: full gradient; auto: the problem's, "
                            "1000 for linear problems, 32 for cnn)"),
             LR_DECAY, OptionSpec("momentum", momentum_value, 0.0, "heavy-ball momentum"), SEED),
            _factory("minibatch_sgd"),
            "one Allreduce of d floats (the gradient)",
        ),
        OptimizerSpec(
            "local-sgd",
            "local SGD / model averaging: H local minibatch steps per rank, then the models "
            "are averaged",
            (LR, OptionSpec("batch", auto_or_nonnegative_int, AUTO,
                            "local batch size per rank (0: the rank's shard; auto: the "
                            "problem's global batch / K)"),
             OptionSpec("local_steps", positive_int, 10, "local steps H between averagings"),
             LR_DECAY, SEED),
            _factory("local_sgd"),
            "one Allreduce of d floats (the model) every H local steps",
        ),
        OptimizerSpec(
            "cocoa",
            "CoCoA: local SDCA on each rank's dual block, updates averaged (gamma = 1/K, "
            "sigma' = 1)",
            (LOCAL_PASSES, SEED),
            _factory("cocoa"),
            "one Allreduce of d floats (the primal update)",
            problems=LINEAR,
        ),
        OptimizerSpec(
            "cocoa+",
            "CoCoA+: local SDCA on each rank's dual block, updates added (sigma' = gamma K)",
            (LOCAL_PASSES, OptionSpec("gamma", fraction, 1.0,
                                      "aggregation weight in (0, 1]; sigma' = gamma K"), SEED),
            _factory("cocoa_plus"),
            "one Allreduce of d floats (the primal update)",
            problems=LINEAR,
        ),
        OptimizerSpec(
            "admm",
            "consensus ADMM: local subproblems solved inexactly by warm-started SDCA, "
            "consensus by averaging",
            (OptionSpec("rho", auto_or_positive_float, AUTO,
                        "penalty; auto: sqrt(L lam)/K from the problem's curvature L"),
             LOCAL_PASSES, SEED),
            _factory("admm"),
            "one Allreduce of d floats (x_k + u_k)",
            problems=LINEAR,
        ),
    ]


@hookimpl
def bench_register_commands(cli: Any) -> None:
    from plugins.optimizers.sweep import sweep_command

    cli.add_command(sweep_command)
