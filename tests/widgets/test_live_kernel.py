"""Coalesced redraws in a live ipykernel: comm messages queued behind a redraw give one redraw of the last value.

The test starts a real kernel (jupyter_client), builds a small explorer in it, and sends the slider's
``value`` as comm messages the way the browser does (``method: update``), all at once: the worst queue a
dragged slider can build. Then it asks the kernel how many pictures were drawn and what they show.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
import ipywidgets as W
from fslcourse.widgets.base import Explorer

class Counter(Explorer):
    def __init__(self):
        self.n = W.IntSlider(value=1, min=1, max=50)
        self.controls = {"n": self.n}
        self.computes = 0
        super().__init__([self.n, self.status], figsize=(3, 2))

    def compute(self):
        self.computes += 1
        return {"n": self.n.value}

    def draw(self, fig, shown):
        fig.add_subplot(111).plot(range(shown["n"]), "o")

    def describe(self, shown):
        return f"n = {shown['n']}"

ex = Counter()
print(ex.n.model_id)
"""


def _execute(kc, code: str, timeout: float = 120) -> str:
    """Run ``code`` in the kernel and return what it printed (fails on an error)."""
    msg_id = kc.execute(code)
    printed = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            printed.append(content["text"])
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(printed)


@pytest.fixture(scope="module")
def kernel():
    import jupyter_client  # comes with jupyterlab, a declared dependency: missing, this fails, not skips
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "FSLCOURSE_DEVICE": "cpu"}
    km = jupyter_client.KernelManager(kernel_name="python3")  # this Python's ipykernel (its native kernel spec)
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_queued_comm_messages_give_one_redraw_of_the_last_value(kernel):
    model_id = _execute(kernel, SETUP).strip()
    assert json.loads(_execute(kernel, "import json; print(json.dumps([ex.redraws, ex.shown]))")) == [1, {"n": 1}]
    values = list(range(2, 42))
    for v in values:  # 40 values sent without waiting: the queue a drag builds when every value is sent
        content = {"comm_id": model_id, "data": {"method": "update", "state": {"value": v}, "buffer_paths": []}}
        kernel.shell_channel.send(kernel.session.msg("comm_msg", content))
    time.sleep(3.0)  # the kernel handles the queue, then the pending redraw runs (an execute would come first)
    redraws, shown, status, computes = json.loads(_execute(
        kernel, "print(json.dumps([ex.redraws, ex.shown, ex.status.value, ex.computes]))"))
    assert shown == {"n": 41} and status == "n = 41"
    print(f"{len(values)} values queued: {redraws} redraws")
    assert redraws == computes and 2 <= redraws <= 6, (redraws, len(values))  # far fewer than 40 redraws


def test_a_change_made_by_cell_code_redraws_at_once(kernel):
    _execute(kernel, "ex = Counter()")
    printed = _execute(kernel, "ex.n.value = 7\nprint(json.dumps([ex.redraws, ex.shown]))")
    assert json.loads(printed) == [2, {"n": 7}]
