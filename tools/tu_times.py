"""Per-translation-unit compile times: a CMake compiler launcher, and its report.

    cmake -B build/t -DCMAKE_CXX_COMPILER_LAUNCHER="python3;$PWD/tools/tu_times.py" ...
    TU_TIMES_LOG=/tmp/tu.log cmake --build build/t
    python3 tools/tu_times.py --report /tmp/tu.log

As a launcher it runs the compile command it is given and appends one line to
``$TU_TIMES_LOG`` (default build-tu-times.log in the working directory): CPU seconds
(user + system of the compiler), wall seconds, and the object file. CPU seconds hardly
depend on what else runs on a shared machine; wall seconds do. The report sums them
per source file and per target.
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time


def launch(cmd: list[str]) -> int:
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    obj = cmd[cmd.index("-o") + 1] if "-o" in cmd else "?"
    with open(os.environ.get("TU_TIMES_LOG", "build-tu-times.log"), "a") as fh:
        fh.write(f"{ru.ru_utime + ru.ru_stime:.2f} {wall:.2f} {obj}\n")
    return rc


def report(path: str) -> None:
    rows = [line.split() for line in open(path) if line.strip()]
    by_source: dict[str, float] = collections.defaultdict(float)
    by_target: dict[str, float] = collections.defaultdict(float)
    for cpu, _, obj in rows:
        parts = obj.split("/")
        target = "link " + obj if obj.endswith(".so") or len(parts) < 2 else parts[1].removesuffix(".dir")
        by_source[os.path.basename(obj).removesuffix(".o")] += float(cpu)
        by_target[target] += float(cpu)
    total = sum(float(r[0]) for r in rows)
    print(f"{len(rows)} compiles, {total:.0f} CPU s in all")
    for name, table in (("source", by_source), ("target", by_target)):
        for key, cpu in sorted(table.items(), key=lambda kv: -kv[1]):
            print(f"  {name} {key:40s} {cpu:7.1f} CPU s  {100 * cpu / total:4.1f}%")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        report(sys.argv[2])
    else:
        sys.exit(launch(sys.argv[1:]))
