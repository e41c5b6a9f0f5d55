"""bench: choose the network, the hardware and the distributed optimizer, by measurement.

A plugin needs one import::

    from harness import hookimpl, ModelSpec, HardwareSpec, OptionSpec, RunResult
"""
from harness.errors import BenchUsageError
from harness.plugins.hookspecs import hookimpl
from harness.specs import (
    AnalyzerSpec,
    HardwareSpec,
    MeasuredRun,
    MeasurementSourceSpec,
    MeasureRequest,
    ModelSpec,
    OptimizerSpec,
    OptionSpec,
    ProblemSpec,
    ReportedMetric,
    RunRequest,
    RunResult,
)
from harness.version import __version__

__all__ = [
    "AnalyzerSpec",
    "BenchUsageError",
    "HardwareSpec",
    "MeasuredRun",
    "MeasurementSourceSpec",
    "MeasureRequest",
    "ModelSpec",
    "OptimizerSpec",
    "OptionSpec",
    "ProblemSpec",
    "ReportedMetric",
    "RunRequest",
    "RunResult",
    "hookimpl",
    "__version__",
]
