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
    build the network inside ``ModelSpec.builder``.
    """


@hookspec
def bench_hardware():
    """Called whenever ``bench`` needs the installed hardware backends.

    Return a list of :class:`harness.HardwareSpec`: a name, a description, the
    ``key=value`` options it accepts (types and defaults) and a ``run(request)``
    callable returning a :class:`harness.RunResult`. Register a backend only when
    it can run here (for example ``cuda`` only when a GPU is visible).
    """


@hookspec
def bench_optimizers():
    """Called whenever ``bench`` needs the distributed optimization algorithms.

    Return a list of :class:`harness.OptimizerSpec` with hyperparameters, a
    factory that builds the rank-side algorithm, and the per-iteration
    communication volume.
    """


@hookspec
def bench_problems():
    """Called whenever ``bench`` needs the optimization problems the algorithms solve.

    Return a list of :class:`harness.ProblemSpec` with options and a factory
    that builds the rank-local problem (its share of the data).
    """


@hookspec
def bench_analyzers():
    """Called whenever ``bench`` lists analyzers of stored measurements.

    Return a list of :class:`harness.AnalyzerSpec`. An analyzer usually also
    implements ``bench_register_commands`` to add its command.
    """


@hookspec
def bench_register_commands(cli):
    """Called once when the ``bench`` command group is built, before arguments are parsed.

    ``cli`` is the root ``click.Group``: add commands with ``cli.add_command(...)``
    or the ``@cli.command()`` decorator. Keep imports inside the command body so
    ``bench --help`` stays fast. Returns nothing.
    """


@hookspec
def bench_result_recorded(result):
    """Called after every result is written to the results store.

    ``result`` is a :class:`harness.store.StoredResult` (id, kind, summary,
    options, environment, ...). Use it to export or stream results. Exceptions
    raised here are reported as warnings and do not undo the write. Returns nothing.
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
