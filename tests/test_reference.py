"""docs/reference.md is generated from the code, and everything in it is documented."""
from __future__ import annotations

from dataclasses import dataclass

from harness import reference
from harness.plugins import hookspecs


def test_every_hook_spec_field_and_export_has_a_docstring():
    missing = reference.undocumented()
    assert missing == [], ("undocumented (write a docstring; a field's goes on the line after "
                           "it): " + ", ".join(missing))


def test_reference_md_matches_the_code():
    current = reference.REFERENCE.read_text(encoding="utf-8")
    assert current == reference.generate(), (
        f"docs/reference.md differs from the code; regenerate with: {reference.REGENERATE}")


def test_every_hook_and_spec_has_a_section():
    text = reference.generate()
    hooks = [n for n in dir(hookspecs) if n.startswith("bench_")]
    assert hooks and {f.__name__ for f in reference.hook_functions()} == set(hooks)
    for name in hooks:
        assert f"### `{name}(" in text
    for cls in reference.spec_classes():
        assert f"### `{cls.__name__}`" in text
        for field in reference.public_fields(cls):
            assert f"| `{field.name}` |" in text


def test_new_hooks_and_fields_are_picked_up_and_undocumented_ones_flagged(monkeypatch):
    def bench_widgets():
        """Called when widgets are listed.

        Example::

            @hookimpl
            def bench_widgets():
                return []
        """

    def bench_gadgets(cli):
        pass

    monkeypatch.setattr(hookspecs, "bench_widgets", hookspecs.hookspec(bench_widgets),
                        raising=False)
    monkeypatch.setattr(hookspecs, "bench_gadgets", hookspecs.hookspec(bench_gadgets),
                        raising=False)
    text = reference.generate()
    assert "### `bench_widgets()`" in text
    assert "```python\n@hookimpl\ndef bench_widgets():\n    return []\n```" in text
    assert "hook bench_gadgets" in reference.undocumented()

    @dataclass
    class Widget:
        """A widget."""

        name: str
        """Its name."""
        size: int = 1

    assert reference.attribute_docs(Widget) == {"name": "Its name."}


def test_bench_plugin_reference_prints_the_page(bench):
    out = bench("plugin", "reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout == reference.generate()
