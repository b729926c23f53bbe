"""Test tiers.

``python3 -m pytest -q`` runs the quick tier: every test not marked ``slow``. It
covers every public function, activation and dtype, bad input and thread
determinism. ``python3 -m pytest -q --full`` runs everything (what ``.ci/run``
runs); ``-m slow`` only the slow tier; an explicit ``-m`` expression, or a test
named by node id (``tests/test_x.py::test_y``), replaces the default selection.
A test is ``slow`` because of what it tests (the certified convex polish, CMake
builds, the type checker), never because it is careless: tests that are not
about the polish turn it off (``polish=None``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False, help="also run the tests marked slow")


def _all_selected(config):
    """--full, an explicit -m expression, or tests named by node id (file::test) run as asked."""
    return config.getoption("--full") or config.getoption("markexpr") or any("::" in a for a in config.args)


def pytest_collection_modifyitems(config, items):
    if _all_selected(config):
        return
    keep, slow = [], []
    for item in items:
        (slow if item.get_closest_marker("slow") else keep).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = keep


def pytest_report_header(config):
    if _all_selected(config):
        return None
    return "quick tier: tests marked slow are deselected (--full runs them)"
