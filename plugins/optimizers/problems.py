"""Built-in optimization problems: logreg, svm, lsq (synthetic or LIBSVM data) and cnn.

Entry point ``problems``. Nothing heavy is imported here: the factories import
numpy, scipy and torch when a rank builds its problem.
"""
from __future__ import annotations

from typing import Any

from harness import OptionSpec, ProblemSpec, hookimpl
from plugins.optimizers.protocol import (
    fraction,
    nonnegative_float,
    positive_float,
    positive_int,
)


def _text(value: str) -> str:
    return value


_text.__name__ = "path"

LINEAR_OPTIONS = (
    OptionSpec("file", _text, "", "LIBSVM/svmlight file (.gz/.bz2/.xz ok); empty: synthetic data"),
    OptionSpec("n", positive_int, 20000, "synthetic: training examples"),
    OptionSpec("d", positive_int, 100, "synthetic: features"),
    OptionSpec("density", fraction, 1.0, "synthetic: fraction of nonzero features (< 1: sparse)"),
    OptionSpec("cond", positive_float, 10.0,
               "synthetic: condition number of the feature covariance"),
    OptionSpec("noise", nonnegative_float, 0.5,
               "synthetic: std of the noise added to the true margin/target"),
    OptionSpec("seed", int, 0, "synthetic: data seed"),
    OptionSpec("lam", nonnegative_float, 1e-3, "L2 regularization weight lambda"),
)

CNN_OPTIONS = (
    OptionSpec("model", _text, "1.0-SqNxt-23", "network from the model plugins"),
    OptionSpec("input_size", positive_int, 32, "image height and width"),
    OptionSpec("classes", positive_int, 10, "classes (the model's last fc is resized)"),
    OptionSpec("n", positive_int, 1024, "synthetic training images"),
    OptionSpec("eval_samples", positive_int, 256,
               "images the objective is evaluated on (split across ranks)"),
    OptionSpec("seed", int, 0, "data and weight-initialization seed"),
    OptionSpec("lam", nonnegative_float, 0.0, "L2 weight decay"),
    OptionSpec("lr", positive_float, 0.05, "step size used when an algorithm's lr=auto"),
)


class LinearFactory:
    """Builds a rank's share of a linear problem; ``prepare`` runs once in the launcher."""

    def __init__(self, name: str, loss: str) -> None:
        self.name = name
        self.loss = loss

    def __call__(self, options: dict[str, Any], comm: Any) -> Any:
        from plugins.optimizers import linear

        return linear.build(self.name, self.loss, options, comm)

    def prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validate the data (parse a file) and compute f* before any MPI job starts."""
        from plugins.optimizers import linear

        return linear.prepare(self.name, self.loss, options)


class CNNFactory:
    """Builds a rank's share of data-parallel CNN training on synthetic images."""

    name = "cnn"

    def __call__(self, options: dict[str, Any], comm: Any) -> Any:
        from plugins.optimizers import cnn

        return cnn.build(options, comm)

    def prepare(self, options: dict[str, Any]) -> dict[str, Any]:
        from plugins.optimizers import cnn

        return cnn.prepare(options)


@hookimpl
def bench_problems() -> list[ProblemSpec]:
    data = ("; synthetic data from a seed (n, d, density, conditioning) or a LIBSVM file "
            "(file=PATH), rows split across ranks")
    return [
        ProblemSpec("logreg", "L2-regularized logistic regression" + data, LINEAR_OPTIONS,
                    LinearFactory("logreg", "logistic")),
        ProblemSpec("svm", "L2-regularized hinge-loss SVM" + data, LINEAR_OPTIONS,
                    LinearFactory("svm", "hinge")),
        ProblemSpec("lsq", "least squares (ridge with lam > 0)" + data, LINEAR_OPTIONS,
                    LinearFactory("lsq", "squared")),
        ProblemSpec("cnn", "data-parallel training of a model-plugin CNN (default "
                    "1.0-SqNxt-23 at 32x32) on synthetic images", CNN_OPTIONS, CNNFactory()),
    ]
