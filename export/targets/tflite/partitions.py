"""How a .tflite model runs after LiteRT applied its default XNNPACK delegate:
the DELEGATE nodes (XNNPACK partitions) and the original nodes still executed
outside them. Self-contained (only ``ai_edge_litert``), so it also runs as a
script in another LiteRT install, e.g. the app's 1.4.0 from ``export.verify_arm``:

    python partitions.py MODEL.tflite...   # one JSON line per model

LiteRT 2.3.0 does not print XNNPACK's "yielding K partitions" line, so the count
comes from the interpreter's node list: walking back from the outputs, a tensor
comes from the DELEGATE node that outputs it if there is one, else from the
original node that writes it; the nodes reached are the ones executed."""

from __future__ import annotations

import json
import sys
from collections import Counter

DELEGATE = "DELEGATE"


def executed_nodes(path: str) -> Counter:
    """Op name -> count of the nodes LiteRT executes for ``path`` (1 thread)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()  # no public API lists the nodes after delegation
    producer = {}
    for node in sorted(nodes, key=lambda n: n["op_name"] == DELEGATE):  # delegate outputs win
        for tensor in node["outputs"]:
            producer[int(tensor)] = node
    pending = [int(d["index"]) for d in interpreter.get_output_details()]
    reached = {}
    while pending:
        node = producer.get(pending.pop())
        if node is None or node["index"] in reached:
            continue
        reached[node["index"]] = node["op_name"]
        pending.extend(int(t) for t in node["inputs"] if t >= 0)
    return Counter(reached.values())


def summary(path: str) -> dict:
    """{"partitions": DELEGATE nodes, "outside": {op: count} executed outside XNNPACK}."""
    nodes = executed_nodes(path)
    return {"partitions": nodes.pop(DELEGATE, 0), "outside": dict(sorted(nodes.items()))}


if __name__ == "__main__":
    for model in sys.argv[1:]:
        print(json.dumps({"model": model, **summary(model)}))
