"""JAX's profiler, for either Flax API: ``jax.profiler.trace`` (a Perfetto trace), whose XLA kernels are
named by fusion (``ynn_fusion.1``); each is mapped back to the jaxpr operation it came from through the
compiled HLO's metadata, so the table says ``transpose(jvp(CNN))/conv2/conv_general_dilated``."""

from __future__ import annotations

import collections
import gzip
import json
import re
import tempfile
from pathlib import Path
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+)")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]+)"')
_COMPUTATION = re.compile(r"^%?([\w.\-]+) .*\{\s*$")


def hlo_op_names(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> the jaxpr op_name it came from (fusions: that of their body).

    XLA drops the metadata of some fusions it builds itself (a convolution's weight
    gradient, for one); those are named by their output shape instead.
    """
    direct, calls, first_in, shapes = {}, {}, {}, {}
    computation = None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header and "=" not in line.split("{")[0]:
            computation = header.group(1)
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name = m.group(1)
        shapes[name] = f"(no metadata) output {m.group(2)}"
        called, op_name = _CALLS.search(line), _OP_NAME.search(line)
        called, op_name = called and called.group(1), op_name and op_name.group(1)
        if op_name:
            direct[name] = op_name
            first_in.setdefault(computation, op_name)
        if called:
            calls[name] = called
    return {**shapes, **{n: first_in[c] for n, c in calls.items() if c in first_in}, **direct}


def profile_backend(backend, xs, ys, steps: int, hlo_text: str) -> list[tuple[str, float]]:
    """Per-operation ms per step: ``steps`` steps on the first half of xs/ys compile, the second half is profiled.

    ``hlo_text`` is the compiled HLO of the backend's step, whose instruction names the trace's events carry.
    """
    import jax

    backend.train_chunk(xs[:steps], ys[:steps])  # compile
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            backend.train_chunk(xs[steps:], ys[steps:])
        trace = next(Path(tmp).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    names = hlo_op_names(hlo_text)
    per_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in names:
            per_op[f"{e['name']}  {names[e['name']]}"] += e.get("dur", 0) / 1e3 / steps
    return per_op.most_common()
