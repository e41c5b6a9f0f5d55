"""The harness version, in a module that imports nothing.

Modules deep in the harness (the environment capture, the layer cache's keys)
read it from here rather than from the ``harness`` package, whose ``__init__``
imports the specs that import them: that would be an import cycle.
"""

__version__ = "0.1.0"
