"""Checks that an sdist holds every tracked file the build and the tests use, and no build product.

    python tools/check_sdist.py dist/flatext-0.1.0.tar.gz

Compares the archive's members with ``git ls-files`` of what the build reads
(CMakeLists.txt, pyproject.toml, cmake/, cpp/, python/) and what the test suite and
README need from the source tree (tests/, examples/cpp/, README.md, LICENSE). Fails
(exit 1) on a tracked file missing from the sdist, and on a file under python/ that
git does not track (a compiled module or installed header copied into the tree would
otherwise ship in the wheel built from the sdist). Run from the checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

BUILD_INPUTS = ["CMakeLists.txt", "pyproject.toml", "cmake", "cpp", "python"]
TEST_INPUTS = ["tests", "examples/cpp", "README.md", "LICENSE"]


def sdist_members(path: Path) -> set[str]:
    with tarfile.open(path) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
    return {n.split("/", 1)[1] for n in names if "/" in n}


def tracked(paths: list[str]) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *paths], check=True, capture_output=True, text=True).stdout
    return {f for f in out.split("\0") if f}


def problems(members: set[str], wanted: set[str], tracked_python: set[str]) -> list[str]:
    out = [f"missing from the sdist: {f}" for f in sorted(wanted - members)]
    out += [
        f"untracked file in the sdist: {f}"
        for f in sorted(members)
        if f.startswith("python/") and f not in tracked_python
    ]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    members = sdist_members(Path(argv[0]))
    wanted = tracked(BUILD_INPUTS + TEST_INPUTS)
    found = problems(members, wanted, tracked(["python"]))
    for line in found:
        print(line)
    print(
        f"check_sdist: {len(wanted)} tracked build and test files, {len(members)} files in the sdist, "
        f"{len(found)} problem(s)"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
