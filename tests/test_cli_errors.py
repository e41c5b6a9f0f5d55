"""Every user error: exit code 2, one line that says what is wrong and what is valid."""
from __future__ import annotations

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
     ["cannot write output file"]),
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
