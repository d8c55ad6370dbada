"""Offline checks of the deployment files (run by scripts/validate-deploy.py).

Each module checks one family of files and returns a list of failures
(strings); nothing here needs a Docker engine, a cluster or the network.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS_BIN = os.path.join(ROOT, ".tools", "bin")


def tool(name):
    """Path of a tool installed by scripts/install-test-tools.sh, else the PATH's."""
    local = os.path.join(TOOLS_BIN, name)
    return local if os.path.exists(local) else name


def rel(path):
    return os.path.relpath(path, ROOT)
