"""How two simulated results differ: per metric, and which layers changed most.

A simulator is deterministic, so there is nothing to test: every difference
is real and every ratio exact. What a user needs is where the difference comes
from, so the layers (matched by name) are ranked by how much of the network's
cycles or energy their change accounts for.
"""
from __future__ import annotations

from typing import Any

from harness.store import StoredResult

# Metrics in the order they are shown; any other energy_* field the results share follows.
METRICS = ("cycles", "compute_cycles", "stall_cycles", "time_s", "energy", "energy_dram",
           "energy_buffer", "energy_pe", "energy_rf", "energy_mac", "utilization",
           "compute_utilization", "dram_accesses", "dram_reads", "dram_writes",
           "buffer_accesses", "pe_transfers", "rf_accesses", "macs")
LAYER_KEYS = ("cycles", "energy", "utilization", "dram_accesses")


def ratio(a: Any, b: Any) -> float | None:
    """B/A exactly; None where A is 0 (or either is missing)."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or a == 0:
        return None
    return b / a


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [k for k in METRICS if k in a or k in b]
    keys += sorted(k for k in set(a) & set(b) if k.startswith("energy_") and k not in keys
                   and _number(a[k]) and _number(b[k]) and k != "energy_j")
    rows = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        r = ratio(va, vb)
        rows.append({"metric": key, "A": va, "B": vb, "B/A": r,
                     "change_pct": None if r is None else 100 * (r - 1)})
    return rows


def _keyed(layers: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows by (name, occurrence): a name used twice is matched in order."""
    seen: dict[str, int] = {}
    out = {}
    for row in layers:
        name = str(row.get("name"))
        out[(name, seen.get(name, 0))] = row
        seen[name] = seen.get(name, 0) + 1
    return out


def _label(key: tuple[str, int]) -> str:
    return key[0] if key[1] == 0 else f"{key[0]}#{key[1] + 1}"


def layer_changes(a: StoredResult, b: StoredResult, top: int) -> dict[str, Any]:
    """The ``top`` layers whose change is the largest share of A's cycles or energy."""
    if not a.layers or not b.layers:
        missing = [str(r.id) for r in (a, b) if not r.layers]
        return {"compared": False, "reason": f"result {' and '.join(missing)} stored no "
                "per-layer rows (made before bench stored them with every simulated run): "
                "per-layer comparison skipped; rerun to get them"}
    ka, kb = _keyed(a.layers), _keyed(b.layers)
    total_cycles = a.summary.get("cycles") or sum(r.get("cycles") or 0 for r in a.layers) or 1
    total_energy = a.summary.get("energy") or sum(r.get("energy") or 0 for r in a.layers) or 1
    changed = []
    for key in [k for k in ka if k in kb]:
        ra, rb = ka[key], kb[key]
        d_cycles = (rb.get("cycles") or 0) - (ra.get("cycles") or 0)
        d_energy = (rb.get("energy") or 0) - (ra.get("energy") or 0)
        differs = any(ra.get(k) != rb.get(k) for k in LAYER_KEYS)
        if not differs:
            continue
        row = {"layer": _label(key), "kind": ra.get("kind")}
        for k in LAYER_KEYS:
            row[f"{k}_a"], row[f"{k}_b"] = ra.get(k), rb.get(k)
        row["cycles_b/a"] = ratio(ra.get("cycles"), rb.get("cycles"))
        row["energy_b/a"] = ratio(ra.get("energy"), rb.get("energy"))
        row["share_of_a_pct"] = 100 * max(abs(d_cycles) / total_cycles,
                                          abs(d_energy) / total_energy)
        changed.append(row)
    changed.sort(key=lambda r: r["share_of_a_pct"], reverse=True)
    return {
        "compared": True,
        "matched": sum(1 for k in ka if k in kb),
        "changed": len(changed),
        "top": changed[:top],
        "only_in_a": [_label(k) for k in ka if k not in kb],
        "only_in_b": [_label(k) for k in kb if k not in ka],
    }


def compare_simulated(a: StoredResult, b: StoredResult, top: int) -> dict[str, Any]:
    """The comparison as a dict (what ``--format json`` prints)."""
    notes = []
    ua, ub = a.summary.get("energy_unit"), b.summary.get("energy_unit")
    if ua != ub:
        notes.append(f"energy units differ ({ua} vs {ub}): energy ratios compare unlike units")
    return {
        "kind": "simulated",
        "a": {"id": str(a.id), "subject": a.subject, "created_utc": a.created_utc},
        "b": {"id": str(b.id), "subject": b.subject, "created_utc": b.created_utc},
        "metrics": metric_rows(a.summary, b.summary),
        "layers": layer_changes(a, b, top),
        "notes": notes,
    }
