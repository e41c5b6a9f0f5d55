"""docs/reference.md, generated from the code so the reference cannot drift from it.

It reads every hook spec in :mod:`harness.plugins.hookspecs` (name, arguments,
docstring), every dataclass in :mod:`harness.specs` and
:class:`harness.layers.Layer` (fields with their type hints, defaults and
attribute docstrings, then public methods and properties), and the names
exported by :mod:`harness`. Hooks and specs added later are picked up with no
change here. :func:`undocumented` lists what has no docstring; the test suite
fails on it and on a docs/reference.md that differs from :func:`generate`.

    python -m harness.reference --write     # regenerate docs/reference.md
    python -m harness.reference --check     # exit 1 if it is out of date
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
REGENERATE = "python -m harness.reference --write"
HEADER = f"""# Reference: hooks and specs

Generated from the code's docstrings and type hints by `{REGENERATE}`; do not
edit by hand (a test fails when this file differs from what the code says). For a
guided start see [plugins.md](plugins.md).

Everything below is importable from `harness` (`from harness import hookimpl, ModelSpec, ...`)
except `Layer`, which backends receive from `RunRequest.layers()`.
"""


# --------------------------------------------------------------------------- reading the code
def _modules() -> tuple[Any, Any, Any, Any]:
    import harness
    from harness import layers, specs
    from harness.plugins import hookspecs

    return harness, hookspecs, specs, layers


def hook_functions() -> list[Any]:
    """Every hook spec, in source order."""
    _, hookspecs, _, _ = _modules()
    marker = f"{hookspecs.PROJECT}_spec"
    found = [obj for name, obj in vars(hookspecs).items()
             if name.startswith("bench_") and callable(obj) and hasattr(obj, marker)]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def spec_classes() -> list[type]:
    """Every dataclass defined in harness.specs (source order), then harness.layers.Layer."""
    _, _, specs, layers = _modules()
    found = [obj for obj in vars(specs).values() if inspect.isclass(obj)
             and dataclasses.is_dataclass(obj) and obj.__module__ == specs.__name__]
    found.sort(key=lambda c: inspect.getsourcelines(c)[1])
    return found + [layers.Layer]


def _class_node(cls: type) -> ast.ClassDef:
    source = textwrap.dedent(inspect.getsource(cls))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    return node


def class_docstring(cls: type) -> str:
    """The docstring written in the class body (a dataclass without one gets a generated
    signature as ``__doc__``, which does not count)."""
    return inspect.cleandoc(ast.get_docstring(_class_node(cls), clean=False) or "")


def attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal right after the field (an attribute docstring)."""
    docs: dict[str, str] = {}
    body = _class_node(cls).body
    for stmt, after in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def public_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.name.startswith("_")]


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Methods and properties defined in the class body itself, in source order."""
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property) or inspect.isfunction(value):
            yield name, value


def exported() -> list[tuple[str, Any]]:
    harness, _, _, _ = _modules()
    return [(name, getattr(harness, name)) for name in harness.__all__]


def undocumented() -> list[str]:
    """Every hook, spec class, spec field and exported callable that has no docstring."""
    missing = [f"hook {f.__name__}" for f in hook_functions() if not inspect.getdoc(f)]
    for cls in spec_classes():
        if not class_docstring(cls):
            missing.append(f"class {cls.__name__}")
        docs = attribute_docs(cls)
        missing += [f"field {cls.__name__}.{f.name}" for f in public_fields(cls)
                    if not docs.get(f.name)]
    for name, value in exported():
        if (callable(value) or inspect.isclass(value)) and not inspect.getdoc(value):
            missing.append(f"export harness.{name}")
    return missing


# --------------------------------------------------------------------------- rendering
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc):`~?([^`]+)`")


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation but '-' and '_' dropped."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _inline(text: str, anchors: dict[str, str]) -> str:
    """reST inline markup to Markdown: roles and double backticks become code spans,
    linked when they name something documented on this page."""
    def role(match: re.Match) -> str:
        target = match.group(1)
        short = target.split(".")[-1]
        if short in anchors:
            return f"[`{short}`](#{anchors[short]})"
        return f"`{target}`"

    return ROLE.sub(role, text).replace("``", "`")


def markdown(doc: str, anchors: dict[str, str]) -> str:
    """A docstring as Markdown: paragraphs kept, ``text::`` + indented block -> code block."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and (i + 1 == len(lines) or not lines[i + 1].strip()
                                            or lines[i + 1].startswith(" ")):
            text = line.rstrip()[:-2].rstrip()
            if text:
                out.append(_inline(text, anchors) + ":")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            out += ["", "```python", textwrap.dedent("\n".join(block)), "```", ""]
            continue
        if line.startswith("\\b"):  # click's no-rewrap marker
            i += 1
            continue
        out.append(_inline(line, anchors))
        i += 1
    return "\n".join(out).strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{f.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def _unquote(annotation: str) -> str:
    return annotation.replace("'", "").replace('"', "")


def _signature(func: Any) -> str:
    """``(a: int, b: str = 'x') -> bool`` from the source's annotations, without ``self``."""
    sig = inspect.signature(func)
    params = []
    for param in sig.parameters.values():
        if param.name == "self":
            continue
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_unquote(str(param.annotation))}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        params.append(text)
    ret = sig.return_annotation
    arrow = f" -> {_unquote(str(ret))}" if ret is not inspect.Signature.empty else ""
    return f"({', '.join(params)}){arrow}"


def render_hook(func: Any, anchors: dict[str, str]) -> str:
    name = func.__name__
    params = ", ".join(inspect.signature(func).parameters)
    return f"### `{name}({params})`\n\n{markdown(inspect.getdoc(func) or '', anchors)}\n"


def render_class(cls: type, anchors: dict[str, str]) -> str:
    where = f"{cls.__module__}.{cls.__name__}"
    parts = [f"### `{cls.__name__}`", "", f"`{where}`", "",
             markdown(class_docstring(cls), anchors), ""]
    docs = attribute_docs(cls)
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in public_fields(cls):
        type_text = _unquote(f.type if isinstance(f.type, str)
                             else getattr(f.type, "__name__", str(f.type)))
        rows.append(f"| `{f.name}` | `{_cell(type_text)}` | {_cell(_default(f))} | "
                    f"{_cell(_inline(docs.get(f.name, ''), anchors))} |")
    parts += rows + [""]
    members = list(public_members(cls))
    if members:
        parts.append("Methods and properties:")
        parts.append("")
        for name, value in members:
            if isinstance(value, property):
                ret = inspect.signature(value.fget).return_annotation
                head = f"`{name}` (property" + (f", `{_unquote(str(ret))}`"
                                               if ret is not inspect.Signature.empty else "") + ")"
                doc = inspect.getdoc(value.fget) or ""
            else:
                head = f"`{name}{_signature(value)}`"
                doc = inspect.getdoc(value) or ""
            summary = _cell(_inline(doc.split("\n\n")[0], anchors)) if doc else ""
            parts.append(f"- {head}" + (f": {summary}" if summary else ""))
        parts.append("")
    return "\n".join(parts)


def render_exports(anchors: dict[str, str]) -> str:
    rows = ["| name | what | summary |", "|---|---|---|"]
    for name, value in exported():
        if inspect.isclass(value):
            kind = "dataclass" if dataclasses.is_dataclass(value) else "class"
            doc = class_docstring(value) if dataclasses.is_dataclass(value) else inspect.getdoc(value)
        elif callable(value):
            kind, doc = "decorator" if name == "hookimpl" else "function", inspect.getdoc(value)
        else:
            kind, doc = type(value).__name__, f"`{value!r}`"
        if name == "hookimpl":
            doc = "Marks a function as a hook implementation: `@hookimpl def bench_models(): ...`."
        label = f"[`{name}`](#{anchors[name]})" if name in anchors else f"`{name}`"
        summary = (doc or "").split("\n\n")[0]
        rows.append(f"| {label} | {kind} | {_cell(_inline(summary, anchors))} |")
    return "\n".join(rows)


def generate() -> str:
    """The whole reference page, as Markdown."""
    classes = spec_classes()
    anchors = {cls.__name__: _anchor(cls.__name__) for cls in classes}
    hooks = hook_functions()
    anchors.update({f.__name__: _anchor(f"{f.__name__}({', '.join(inspect.signature(f).parameters)})")
                    for f in hooks})
    parts = [HEADER, "## Exported by `harness`", "", render_exports(anchors), "",
             "## Hooks", "",
             "Implement any of them in a module listed under the `bench.plugins` entry point. "
             "Hooks without arguments list specs; every one is optional.", ""]
    parts += [render_hook(f, anchors) for f in hooks]
    parts += ["## Specs", "",
              "Plain dataclasses: hooks return them, backends receive `RunRequest` and return "
              "`RunResult`.", ""]
    parts += [render_class(cls, anchors) for cls in classes]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/reference.md from the code.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {REFERENCE.name}")
    group.add_argument("--check", action="store_true", help="exit 1 if it is out of date")
    args = parser.parse_args(argv)
    text = generate()
    if args.write:
        REFERENCE.write_text(text, encoding="utf-8")
        print(f"wrote {REFERENCE}")
    elif args.check:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE} is out of date; regenerate with: {REGENERATE}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    missing = undocumented()
    if missing:
        print("undocumented: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
