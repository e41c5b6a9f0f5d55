"""The hooks a ``bench`` plugin can implement.

A plugin is a module (or object) with functions decorated by ``harness.hookimpl``
whose names match the specs below. Install it as an entry point in the group
``bench.plugins`` and ``bench`` finds it. Every hook is optional.
"""
from __future__ import annotations

import pluggy

PROJECT = "bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bench_models():
    """Called whenever ``bench`` needs the installed networks (``list``, ``run``, ``inspect``).

    Return a list of :class:`harness.ModelSpec`. Names must be unique across
    plugins (compared case-insensitively). Do not import torch at module level:
    build the network inside ``ModelSpec.builder``, whose output must be
    ``(N, num_classes)``.

    Example::

        @hookimpl
        def bench_models():
            return [ModelSpec(name="tiny-net", family="tiny", builder=build_tiny_net,
                              input_size=(3, 32, 32), num_classes=10)]
    """


@hookspec
def bench_hardware():
    """Called whenever ``bench`` needs the installed hardware backends.

    Return a list of :class:`harness.HardwareSpec`: a name, a description, the
    ``key=value`` options it accepts (types and defaults) and a ``run(request)``
    callable returning a :class:`harness.RunResult`. Register a backend only when
    it can run here (for example ``cuda`` only when a GPU is visible).

    Example::

        @hookimpl
        def bench_hardware():
            return [HardwareSpec(
                name="macs-hw", description="1 ns per MAC",
                options=(OptionSpec("ns_per_mac", float, 1.0, "nanoseconds per MAC"),),
                run=lambda request: RunResult(summary={"time_s": 1e-9 * request.options[
                    "ns_per_mac"] * sum(layer.macs for layer in request.layers())}),
            )]
    """


@hookspec
def bench_optimizers():
    """Called whenever ``bench`` needs the distributed optimization algorithms.

    Return a list of :class:`harness.OptimizerSpec` with hyperparameters, a
    factory that builds the rank-side algorithm, and the per-iteration
    communication volume.

    Example::

        @hookimpl
        def bench_optimizers():
            return [OptimizerSpec(
                name="my-sgd", description="synchronous SGD",
                hyperparameters=(OptionSpec("lr", float, 0.1, "step size"),),
                factory=make_my_sgd, communication="one Allreduce of d float64",
            )]
    """


@hookspec
def bench_problems():
    """Called whenever ``bench`` needs the optimization problems the algorithms solve.

    Return a list of :class:`harness.ProblemSpec` with options and a factory
    that builds the rank-local problem (its share of the data).

    Example::

        @hookimpl
        def bench_problems():
            return [ProblemSpec(name="my-lsq", description="least squares on my data",
                                options=(OptionSpec("n", int, 1000, "examples"),),
                                factory=make_my_lsq)]
    """


@hookspec
def bench_analyzers():
    """Called whenever ``bench`` lists analyzers of stored measurements.

    Return a list of :class:`harness.AnalyzerSpec`. An analyzer usually also
    implements ``bench_register_commands`` to add its command.

    Example::

        @hookimpl
        def bench_analyzers():
            return [AnalyzerSpec(name="my-report", description="weekly summary",
                                 command="my-report", reads="runs")]
    """


@hookspec
def bench_measurement_sources():
    """Called whenever ``bench tune`` needs the sources it can get runs from.

    Return a list of :class:`harness.MeasurementSourceSpec`: a name, a
    description, ``check(problem, algorithms, options)`` (raise
    :class:`harness.BenchUsageError` for names it does not know; return the
    largest cluster size it can run, or None) and ``measure(request)``, which
    makes one run of ``request.algorithm`` on ``request.problem`` at
    ``request.ranks`` machines, writes it to ``request.store`` as a ``sweep``
    result carrying ``request.run_tag`` in its options, and returns a
    :class:`harness.MeasuredRun`. Built in: ``mpi`` (``bench sweep``'s jobs)
    and ``synthetic`` (known ground truths, for tests and benchmarks).

    Example::

        @hookimpl
        def bench_measurement_sources():
            return [MeasurementSourceSpec(
                name="my-queue", description="jobs on the lab cluster's queue",
                check=lambda problem, algorithms, options: 64,
                measure=submit_and_wait,  # stores the run, returns a MeasuredRun
            )]
    """


@hookspec
def bench_register_commands(cli):
    """Called once when the ``bench`` command group is built, before arguments are parsed.

    ``cli`` is the root ``click.Group``: add commands with ``cli.add_command(...)``
    or the ``@cli.command()`` decorator. Keep imports inside the command body so
    ``bench --help`` stays fast. Returns nothing. ``bench plugins --verbose`` shows
    which plugin added which command.

    Example::

        @hookimpl
        def bench_register_commands(cli):
            @cli.command("hello")
            def hello():
                click.echo("hello from my plugin")
    """


@hookspec
def bench_result_recorded(result):
    """Called after every result is written to the results store.

    ``result`` is a :class:`harness.store.StoredResult` (id, kind, summary,
    options, environment, ...). Use it to export or stream results. Exceptions
    raised here are reported as warnings and do not undo the write. Returns nothing.

    Example::

        @hookimpl
        def bench_result_recorded(result):
            with open("results.log", "a") as log:
                print(result.id, result.model, result.summary.get("time_s"), file=log)
    """


@hookspec
def bench_accel_presets():
    """Called whenever ``bench`` lists the hardware backends, by the built-in ``accel``
    simulator, to collect presets of it from other plugins.

    Return a list of presets, each a path (``str`` or ``pathlib.Path``) to a TOML or
    JSON preset file, an ``importlib.resources`` file, or a ``dict`` with the same
    fields: ``name``, optional ``description``, optional ``energy`` (a built-in
    table name such as ``"eyeriss"``, a path, or an inline table with ``mac``,
    ``rf``, ``pe``, ``buffer``, ``dram``), and any ``accel`` option (``array``,
    ``ifmap_kib``, ``dram_bw``, ``cost_dram``, ...; ``bench preset fields`` lists
    them). Each becomes a backend of that name. An invalid preset is listed as
    invalid and reports its error when used; it never hides the others. Example::

        @hookimpl
        def bench_accel_presets():
            return [{"name": "edge-tpu-ish", "array": "64x64", "dram_bw": 32,
                     "weight_kib": 512, "ifmap_kib": 512, "ofmap_kib": 256},
                    importlib.resources.files("mychip") / "mychip.toml"]
    """
