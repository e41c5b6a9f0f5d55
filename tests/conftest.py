"""Shared fixtures: run the real ``bench`` command in a subprocess against a private store."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DOC = REPO / "docs" / "plugins.md"


def doc_files() -> dict[str, str]:
    """The example package's files, as written in docs/plugins.md."""
    text = DOC.read_text(encoding="utf-8")
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"File: `([^`]+)`\s*\n\s*```\w*\n(.*?)```", text, re.S)
    }


def make_distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                      modules: dict[str, str]) -> None:
    """Write modules plus a ``.dist-info`` folder: what pip leaves behind for a wheel."""
    for rel, source in modules.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    info.joinpath("entry_points.txt").write_text(f"[bench.plugins]\n{lines}", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder on PYTHONPATH holding the documented toy plugin and two broken ones."""
    site = tmp_path / "site"
    site.mkdir()
    files = doc_files()
    make_distribution(site, "bench-toy", "0.3", {"toy": "bench_toy"},
                      {"bench_toy/__init__.py": files["bench_toy/__init__.py"]})
    make_distribution(site, "bench-explodes", "1.0", {"explodes": "bench_explodes"},
                      {"bench_explodes.py": "raise RuntimeError('boom at import')\n"})
    make_distribution(site, "bench-typo", "2.0", {"typo": "bench_typo"}, {
        "bench_typo.py": "from harness import hookimpl\n\n@hookimpl\ndef bench_modles():\n"
                         "    return []\n"})
    return site




@pytest.fixture(scope="session", autouse=True)
def private_layer_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or fill the user's layer-table cache (harness.layer_cache)."""
    previous = os.environ.get("BENCH_LAYER_CACHE")
    os.environ["BENCH_LAYER_CACHE"] = str(tmp_path_factory.mktemp("layer-cache"))
    yield
    if previous is None:
        os.environ.pop("BENCH_LAYER_CACHE", None)
    else:
        os.environ["BENCH_LAYER_CACHE"] = previous


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite"


@pytest.fixture
def bench(store_path: Path):
    """Call as ``bench("list", "models", env={...})``; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            input: str | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "BENCH_STORE": str(store_path)}
        full_env.pop("BENCH_DISABLE_PLUGINS", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "harness", *args], capture_output=True, text=True,
            env=full_env, timeout=timeout, input=input, cwd=str(REPO),
        )

    return run


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The single ``Error: ...`` line of a user error (exit 2, no traceback)."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]
