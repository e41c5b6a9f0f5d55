"""Every user error: exit code 2, one line that says what is wrong and what is valid."""
from __future__ import annotations

import json

import pytest

BAD_INPUTS = [
    # (arguments, words the one-line message must contain)
    (["runn"], ["unknown command 'runn'", "did you mean 'run'"]),
    (["list", "modles"], ["'modles' is not one of", "models"]),
    (["run", "--model", "toy-nett", "--hw", "toy-hw"], ["unknown model 'toy-nett'",
                                                        "did you mean 'toy-net'", "valid:"]),
    (["run", "--model", "toy-net", "--hw", "toy-hx"], ["unknown hardware backend 'toy-hx'",
                                                       "did you mean 'toy-hw'"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "ns_per_mak=1"],
     ["unknown option for hardware 'toy-hw' 'ns_per_mak'", "ns_per_mac"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "ns_per_mac=fast"],
     ["bad value 'fast'", "ns_per_mac"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "ns_per_mac"],
     ["not key=value", "valid keys: ns_per_mac"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--batch", "0"],
     ["--batch must be a positive integer"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--batch", "many"],
     ["'many' is not a valid integer"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--batch", "65"],
     ["toy-hw takes batches up to 64"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--format", "xml"],
     ["'xml' is not one of", "table"]),
    (["run", "--model", "toy-net"], ["Missing option '--hw'"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--colour"], ["No such option"]),
    (["results", "show", "12"], ["no result with id 12", "the store is empty"]),
    (["results", "show", "latest"], ["result id must be a number"]),
    (["results", "export", "--format", "yaml"], ["'yaml' is not one of", "json", "csv"]),
    (["matrix", "--model", "toy-net", "--hw", "toy-hw", "--baseline", "toy-nte"],
     ["unknown model 'toy-nte'"]),
    (["matrix", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "array=8x8"],
     ["unknown option for the chosen backends 'array'", "ns_per_mac"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--out", "/nonexistent/dir/out.txt"],
     ["--out '/nonexistent/dir/out.txt': folder '/nonexistent/dir' does not exist"]),
    (["run", "--model", "toy-net", "--hw", "toy-hw", "--batch", "99999999999999999999"],
     ["--batch must be at most 1,000,000"]),
]


@pytest.mark.parametrize("args,words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(bench, site, args, words):
    out = bench(*args, env={"PYTHONPATH": str(site)})
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_store_file_is_a_usage_error(bench, site, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    out = bench("results", "list", "--store", str(junk), env={"PYTHONPATH": str(site)})
    assert out.returncode == 2
    assert "cannot open results store" in out.stderr and "--store" in out.stderr
    assert junk.read_bytes().startswith(b"this is not a database")  # left untouched


# The examples of issue 11 and their kin: {tmp} is a fresh folder, {file} a plain file in
# it (not executable), flat-net a plugin model with a flat (784,) input.
PATH_ERRORS = [
    (["run", "--model", "1.0-SqNxt-23", "--hw", "accel", "--batch", "99999999999999999999"],
     ["--batch must be at most 1,000,000, not 99,999,999,999,999,999,999"]),
    (["inspect", "--model", "1.0-SqNxt-23", "--batch", "-3"], ["--batch must be a positive"]),
    (["matrix", "--model", "toy-net", "--hw", "toy-hw", "--jobs", "100000"],
     ["--jobs must be at most 256"]),
    (["results", "list", "--limit", "1e3"], ["--limit: '1e3' is not a valid integer"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--mpiexec", "{tmp}"],
     ["--mpiexec '{tmp}' is a directory, not a program"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--mpiexec", "{file}"],
     ["--mpiexec '{file}' is not executable"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--mpiexec", "{tmp}/no/mpiexec"],
     ["--mpiexec '{tmp}/no/mpiexec' does not exist"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--ranks", "1,99999999"],
     ["--ranks takes integers from 1 to 65,536"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--hostfile", "{tmp}"],
     ["--hostfile '{tmp}' is a directory, not a file"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--timeout", "nan"],
     ["--timeout must be a positive number, not nan"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--problem-opt", "file={tmp}"],
     ["LIBSVM file '{tmp}' is a directory, not a file"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--save-iterate",
      "{tmp}/no/x.npy"], ["--save-iterate '{tmp}/no/x.npy': folder '{tmp}/no' does not exist"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--save-iterate", "{tmp}"],
     ["--save-iterate '{tmp}' is a directory; give a file name"]),
    (["sweep", "--optimizer", "cocoa", "--problem", "logreg", "--save-iterate",
      "/proc/self/x.npy"], ["folder '/proc/self' is not writable"]),
    (["results", "list", "--store", "{tmp}/no/x.sqlite"],
     ["--store '{tmp}/no/x.sqlite': folder '{tmp}/no' does not exist (create it first)"]),
    (["results", "list", "--store", "{tmp}"], ["--store '{tmp}' is a directory"]),
    (["results", "list", "--store", "/proc/self/x.sqlite"],
     ["folder '/proc/self' is not writable"]),
    (["results", "list", "--store", "{file}/x.sqlite"], ["'{file}' is a file, not a folder"]),
    (["results", "export", "--out", "{tmp}"], ["--out '{tmp}' is a directory; give a file name"]),
    (["rank", "--epsilon", "1e-3", "--input", "{tmp}/none.csv"],
     ["--input '{tmp}/none.csv' does not exist"]),
    (["rank", "--epsilon", "1e-3", "--input", "{tmp}"], ["--input '{tmp}' is a directory"]),
    (["rank", "--epsilon", "1e-3", "--plot", "{tmp}/no/plot.png"],
     ["--plot '{tmp}/no/plot.png': folder '{tmp}/no' does not exist"]),
    (["explore", "--plot", "{tmp}/no/front.png"], ["--plot '{tmp}/no/front.png': folder"]),
    (["design-study", "--plot-dir", "{file}"], ["--plot-dir '{file}' is a file, not a folder"]),
    (["preset", "check", "{tmp}"], ["file '{tmp}' is a directory, not a file"]),
    (["plugin", "new", "mychip", "--dir", "{tmp}/no/mychip"],
     ["--dir '{tmp}/no/mychip': folder '{tmp}/no' does not exist"]),
    (["run", "--model", "flat-net", "--hw", "accel", "--input-size", "32"],
     ["model 'flat-net' takes a flat input of 784 features", "--input-size does not apply"]),
    (["inspect", "--model", "flat-net", "--input-size", "32"], ["takes a flat input"]),
    (["matrix", "--model", "toy-net,flat-net", "--hw", "accel", "--input-size", "32"],
     ["model 'flat-net' takes a flat input"]),
]

FLAT_PLUGIN = '''
from harness import ModelSpec, hookimpl
from harness.cli import open_store, record_result


def build():
    import torch.nn as nn
    return nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


@hookimpl
def bench_models():
    return [ModelSpec(name="flat-net", family="flat", builder=build, input_size=(784,),
                      num_classes=10)]


@hookimpl
def bench_register_commands(cli):
    @cli.command("crash")
    def crash():
        """A bug: an internal error."""
        {}["missing key"]

    @cli.command("store-then-ctrl-c")
    def store_then_ctrl_c():
        """Store one result, then the user presses Ctrl-C."""
        record_result(open_store(None), model="m", hardware="h", summary={"x": 1})
        raise KeyboardInterrupt
'''


@pytest.fixture
def flat_site(site):
    from conftest import make_distribution

    make_distribution(site, "bench-flat", "1.0", {"flat": "bench_flat"},
                      {"bench_flat.py": FLAT_PLUGIN})
    return site


@pytest.mark.parametrize("args,words", PATH_ERRORS, ids=[" ".join(a) for a, _ in PATH_ERRORS])
def test_issue_examples_exit_2_with_one_line(bench, flat_site, tmp_path, args, words):
    folder = tmp_path / "given"
    folder.mkdir()
    (folder / "plain").write_text("not a program\n")
    fill = {"tmp": str(folder), "file": str(folder / "plain")}
    out = bench(*[a.format(**fill) for a in args], env={"PYTHONPATH": str(flat_site)})
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    for word in words:
        assert word.format(**fill) in lines[0], lines[0]
    # nothing was made behind the user's back: no folder, no file
    assert sorted(p.name for p in folder.iterdir()) == ["plain"]


def test_internal_error_is_one_line_exit_1_and_debug_shows_the_traceback(bench, flat_site):
    env = {"PYTHONPATH": str(flat_site)}
    out = bench("crash", env=env)
    assert out.returncode == 1
    assert out.stderr.strip() == ("internal error: KeyError: 'missing key' (run with --debug "
                                  "or BENCH_DEBUG=1 for the traceback)")
    for debug in (bench("--debug", "crash", env=env),
                  bench("crash", env={**env, "BENCH_DEBUG": "1"})):
        assert debug.returncode == 1
        assert "Traceback (most recent call last)" in debug.stderr
        assert "KeyError: 'missing key'" in debug.stderr


def test_ctrl_c_is_one_line_exit_130_and_keeps_stored_results(bench, flat_site):
    env = {"PYTHONPATH": str(flat_site)}
    out = bench("store-then-ctrl-c", env=env)
    assert out.returncode == 130
    assert out.stderr.strip() == "interrupted: results stored so far are kept"
    listed = bench("results", "list", "--format", "json", env=env)
    assert [r["model"] for r in json.loads(listed.stdout)] == ["m"]


def test_the_default_store_folder_is_made_and_said(bench, tmp_path):
    data = tmp_path / "xdg"
    out = bench("results", "list", env={"BENCH_STORE": "", "XDG_DATA_HOME": str(data)})
    assert out.returncode == 0, out.stderr
    assert f"created folder {data / 'bench'} for results store" in out.stderr
    assert (data / "bench" / "results.sqlite").is_file()
