"""Drives a real Jupyter kernel headless, the way a notebook front end does.

    python drive.py CELLS.json KERNEL_NAME

CELLS.json is a list of cells: ``{"code": "...", "timeout": 120}`` plus,
optionally, ``"interrupt_when": PATH``: once PATH exists (a task of the cell
creates it when it runs), the driver interrupts the kernel as a notebook's
stop button does (``KernelManager.interrupt_kernel``, SIGINT to the kernel).

The kernel is found by name through JUPYTER_PATH (the caller's kernel spec
in a temporary folder: nothing is registered on the machine). Prints one
JSON object on stdout: per cell its msg_id, reply status, every iopub
message with that cell as parent (stream text by name, execute results,
error ename/evalue/traceback), its seconds from request to idle and from
interrupt to idle, and every message whose parent is no cell of ours ("stray"). On a
timeout (kernel start 60 s, each cell its "timeout") the driver prints what
it has with "hung" set and the kernel's state, makes the kernel dump its
threads' tracebacks (SIGABRT, with PYTHONFAULTHANDLER set) and kills it.
"""

import json
import os
import queue
import signal
import sys
import time

from jupyter_client.manager import start_new_kernel


def kernel_state(km, kc):
    state = {"alive": km.is_alive()}
    try:
        state["pid"] = km.provisioner.pid if km.provisioner else None
    except Exception as e:
        state["pid"] = repr(e)
    return state


def run_cell(km, kc, cell, result):
    code = cell["code"]
    timeout = cell.get("timeout", 120)
    marker = cell.get("interrupt_when")
    started = time.monotonic()
    msg_id = kc.execute(code, store_history=True, allow_stdin=False)
    out = {
        "msg_id": msg_id,
        "stdout": "",
        "stderr": "",
        "results": [],
        "errors": [],
        "reply": None,
        "interrupt_to_end_s": None,
        "elapsed_s": None,
    }
    result["cells"].append(out)
    deadline = time.monotonic() + timeout
    interrupted_at = None
    idle = False
    while not idle:
        now = time.monotonic()
        if now > deadline:
            return False
        if marker and interrupted_at is None and os.path.exists(marker):
            # Let the other tasks start too, then press stop.
            time.sleep(0.5)
            interrupted_at = time.monotonic()
            km.interrupt_kernel()
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        parent = msg.get("parent_header", {}).get("msg_id")
        kind = msg["msg_type"]
        content = msg["content"]
        if parent != msg_id:
            if kind not in ("status", "execute_input"):
                result["stray"].append({"parent": parent, "type": kind, "content": content})
            continue
        if kind == "stream":
            out[content["name"]] += content["text"]
        elif kind == "execute_result":
            out["results"].append(content["data"].get("text/plain"))
        elif kind == "error":
            out["errors"].append({
                "ename": content["ename"],
                "evalue": content["evalue"],
                "traceback": content["traceback"],
            })
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    out["elapsed_s"] = round(time.monotonic() - started, 3)
    if interrupted_at is not None:
        out["interrupt_to_end_s"] = round(time.monotonic() - interrupted_at, 3)
    try:
        reply = kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        out["reply"] = reply["content"]["status"]
    except queue.Empty:
        return False
    return True


def main():
    cells_file, kernel_name = sys.argv[1], sys.argv[2]
    with open(cells_file) as f:
        cells = json.load(f)
    result = {"cells": [], "stray": [], "hung": None, "kernel": None}
    try:
        km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=60)
    except Exception as e:
        result["hung"] = f"kernel start: {type(e).__name__}: {e}"
        print(json.dumps(result))
        return 1
    try:
        for i, cell in enumerate(cells):
            if not run_cell(km, kc, cell, result):
                result["hung"] = f"cell {i}"
                break
        # Messages a cell's tasks sent after the cell ended are strays.
        time.sleep(0.5)
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                break
            if msg["msg_type"] not in ("status", "execute_input"):
                result["stray"].append({
                    "parent": msg.get("parent_header", {}).get("msg_id"),
                    "type": msg["msg_type"],
                    "content": msg["content"],
                })
        result["kernel"] = kernel_state(km, kc)
        if result["hung"]:
            pid = result["kernel"]["pid"]
            if isinstance(pid, int):
                # faulthandler prints every thread's traceback to the kernel's
                # stderr, which is ours.
                try:
                    os.kill(pid, signal.SIGABRT)
                except OSError:
                    pass
                time.sleep(2)
    finally:
        print(json.dumps(result), flush=True)
        try:
            kc.stop_channels()
        finally:
            if result["hung"]:
                km.shutdown_kernel(now=True)
            else:
                km.shutdown_kernel(now=False)
    return 1 if result["hung"] else 0


if __name__ == "__main__":
    sys.exit(main())
