"""Tests of moe_vla_ros/cli.py: repeated KEY<sep>VALUE arguments."""

import pytest

from moe_vla_ros.bags.errors import BagError
from moe_vla_ros.cli import parse_pairs


def test_pairs_keep_their_order_and_split_at_the_first_separator():
    assert parse_pairs(["b=x", "a=y=z"], "=", "--camera NAME=TOPIC") == {"b": "x", "a": "y=z"}
    assert parse_pairs(["/a:=/b"], ":=", "--remap FROM:=TO") == {"/a": "/b"}
    assert parse_pairs([], "=", "--camera NAME=TOPIC") == {}


@pytest.mark.parametrize("item", ["wrist", "=topic", "wrist=", ""])
def test_a_malformed_item_is_named(item):
    with pytest.raises(BagError, match=f"--camera takes NAME=TOPIC, got {item!r}"):
        parse_pairs([item], "=", "--camera NAME=TOPIC", BagError)
    with pytest.raises(ValueError):
        parse_pairs([item], "=", "--camera NAME=TOPIC")


TOOL_WITH_A_CHILD = """
import subprocess, sys, time
from moe_vla_ros.cli import run_tool

def body():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        print(child.pid, flush=True)
        time.sleep(120)
    finally:
        child.terminate()
        child.wait()
        print("cleaned up", flush=True)

raise SystemExit(run_tool("tool", body))
"""


def test_sigterm_unwinds_a_tool_like_ctrl_c_so_its_children_stop():
    """SIGTERM (what schedulers, `timeout` and `kill` send) runs the tool's finally blocks and
    exits 143: a tool that runs trainings or nodes as child processes does not orphan them."""
    import os
    import signal
    import subprocess
    import sys

    from moe_vla_ros.errors import EXIT_TERMINATED

    proc = subprocess.Popen([sys.executable, "-c", TOOL_WITH_A_CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())  # the child runs and the body sleeps
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_TERMINATED and "cleaned up" in out and "tool: terminated" in err
    try:
        os.kill(child, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
