"""Crash-safe results: Parquet part files written atomically, consolidated at the end.

Layout for ``out = results.parquet``::

    results.parquet.parts/part-<time>-<pid>-<k>.parquet   one per finished batch of cells
    results.parquet                                      the consolidated table (written last)

A part is written to a hidden temporary name in the same directory, flushed
and fsync'ed, then moved into place with :func:`os.replace` (atomic on POSIX).
A reader therefore sees either the whole part or nothing: a kill at any moment
loses at most the cells still in flight and never leaves a half-written row.
(The directory is not fsync'ed after each part, which would cost ~10 ms per
part: after a power failure the newest parts may be missing, never partial,
and are recomputed on resume. The consolidated file's directory is.) Temporary files left by a kill start with
``.tmp-`` and are removed on the next run.

Resume: the rows already in the parts with a final status (``ok``,
``diverged``, ``not_interpolating``: :mod:`flatext.sweeps.status`) are kept and
their cells skipped; cells whose row has ``status == "failed"`` (or ``"error"``,
written by older versions) are run again.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import time
import warnings

import numpy as np

from .status import FINAL

# pandas and pyarrow (the `sweep` extra) are imported where used, so that
# `import flatext` works without them.

__all__ = ["ResultStore"]

_counter = itertools.count()


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write_table(table, path, sync_dir=True):
    import pyarrow.parquet as pq

    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".tmp-{os.path.basename(path)}-{os.getpid()}-{next(_counter)}")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        _fsync_dir(d)


def _rows_to_table(rows):
    """An Arrow table of row dicts (columns: the union of their keys, in first-seen order)."""
    import pyarrow as pa

    keys = list(dict.fromkeys(k for r in rows for k in r))
    try:  # direct: much cheaper than going through pandas for small batches
        return pa.table({k: pa.array([r.get(k) for r in rows]) for k in keys})
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in a column: let pandas decide
        import pandas as pd

        return pa.Table.from_pandas(pd.DataFrame(rows, columns=keys), preserve_index=False)


_STR_DTYPE = None


def _normalize(df):
    """Column types that do not depend on how rows were split into parts.

    A column absent from some parts (or all-null in one) comes back as
    ``object`` holding ``None``: make booleans nullable ``boolean`` and
    numbers ``float64`` (NaN for missing), whatever the partition.
    """
    import pandas as pd

    global _STR_DTYPE
    if _STR_DTYPE is None:
        _STR_DTYPE = _str_dtype()
    for col in df.columns:
        s = df[col]
        if not (s.dtype == object or pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        vals = s.dropna()
        if len(vals) == 0:
            df[col] = pd.Series([None] * len(s), dtype=object, index=s.index)
        elif all(isinstance(v, (bool, np.bool_)) for v in vals):
            df[col] = s.astype("boolean")
        elif all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in vals
        ):
            df[col] = s.astype("float64")
        elif all(isinstance(v, str) for v in vals):
            df[col] = s.astype(_STR_DTYPE)  # what pandas gives strings with missing values
    return df


def _str_dtype():
    import pandas as pd

    return pd.Series(["a", None]).dtype  # object (pandas < 3) or str (pandas >= 3)


class ResultStore:
    """Parquet results of one sweep at ``out`` (see the module docstring).

    Parameters
    ----------
    out : str or path
        The consolidated Parquet file; parts go to ``<out>.parts/``.
    resume : bool
        Keep the parts of an earlier run (default); ``False`` deletes them first.
    """

    def __init__(self, out, resume=True):
        self.out = os.path.abspath(os.fspath(out))
        self.parts_dir = self.out + ".parts"
        parent = os.path.dirname(self.out)
        if parent and not os.path.isdir(parent):
            raise ValueError(f"out: directory {parent!r} does not exist")
        if not resume:
            if os.path.isdir(self.parts_dir):
                shutil.rmtree(self.parts_dir)
            if os.path.exists(self.out):
                os.unlink(self.out)
        os.makedirs(self.parts_dir, exist_ok=True)
        for tmp in glob.glob(os.path.join(self.parts_dir, ".tmp-*")):  # leftovers of a kill
            try:
                os.unlink(tmp)
            except OSError:
                pass

    # -- reading --------------------------------------------------------------
    def part_files(self):
        return sorted(glob.glob(os.path.join(self.parts_dir, "part-*.parquet")))

    def read_rows(self):
        """All rows in the parts (a DataFrame; empty when none), in the order written."""
        import pandas as pd
        import pyarrow.parquet as pq

        frames = []
        for f in self.part_files():
            try:
                frames.append(pq.read_table(f).to_pandas())
            except Exception as e:  # cannot happen with atomic writes; do not lose the rest
                warnings.warn(f"skipping unreadable part {f}: {e}", RuntimeWarning, stacklevel=2)
        if not frames:
            return pd.DataFrame()
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        return _normalize(pd.concat(frames, ignore_index=True, sort=False))

    def finished_ids(self):
        """Cell ids with a row of a final status (``ok``, ``diverged``, ``not_interpolating``) in the parts."""
        df = self.read_rows()
        if df.empty or "cell_id" not in df:
            return set()
        return set(df.loc[df["status"].isin(FINAL), "cell_id"])

    # -- writing --------------------------------------------------------------
    def write_part(self, rows):
        """Write a batch of finished rows as one new part (atomically). Returns its path."""
        if not rows:
            return None
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}.parquet"
        path = os.path.join(self.parts_dir, name)
        _atomic_write_table(_rows_to_table(rows), path, sync_dir=False)
        return path

    def consolidate(self, cell_ids):
        """Write ``out``: one row per cell of ``cell_ids`` (in that order) found in the parts.

        For a cell with several rows (a rerun of a failure), a row of a final
        status wins, else the latest. Returns the DataFrame written.
        """
        import pandas as pd

        df = self.read_rows()
        if df.empty:
            df = pd.DataFrame({"cell_id": pd.Series([], dtype=object)})
        order = {cid: i for i, cid in enumerate(cell_ids)}
        df = df[df["cell_id"].isin(order)].copy()
        if len(df):
            df["_ok"] = df["status"].isin(FINAL).astype(int)
            df["_seq"] = range(len(df))
            df = df.sort_values(["_ok", "_seq"]).drop_duplicates("cell_id", keep="last")
            df["_order"] = df["cell_id"].map(order)
            df = df.sort_values("_order").drop(columns=["_ok", "_seq", "_order"])
        df = df.reset_index(drop=True)
        import pyarrow as pa

        _atomic_write_table(pa.Table.from_pandas(df, preserve_index=False), self.out)
        return df
