"""``max_seconds`` and ``callback`` of :func:`flatext.certified_flattest`."""

from __future__ import annotations

import time


class _Budget:
    """``max_seconds`` and ``callback`` of :func:`certified_flattest`: checked after each cone solve
    (``stop``); Clarabel's and the IPM's first solve is limited to the time left (``solver``).
    ``max_seconds`` was checked by :class:`flatext.ConvexOptions`."""

    def __init__(self, t0, max_seconds, callback, solver):
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable; got {type(callback).__name__}")
        self.t0, self.max_seconds, self.callback, self.name = t0, max_seconds, callback, solver
        self.stopped = None  # "time_budget" or "callback" once the rounds were cut
        self.solved = False

    def check_patterns(self, count):
        spent = time.perf_counter() - self.t0
        if self.max_seconds is not None and spent >= self.max_seconds:
            raise TimeoutError(
                f"certified_flattest: max_seconds = {self.max_seconds:g} spent on the {count} activation patterns "
                f"({spent:.3g} s) before the first cone solve: no valid answer yet (raise max_seconds, "
                "or patterns='sampled' with fewer n_patterns)"
            )

    def stop(self, rounds, objective):
        now = time.perf_counter() - self.t0
        info = {"stage": "pricing" if rounds else "solve", "round": int(rounds), "objective": float(objective)}
        if self.callback is not None and self.callback(dict(info, elapsed=now)):
            self.stopped = "callback"
        elif self.max_seconds is not None and now >= self.max_seconds:
            self.stopped = "time_budget"
        return self.stopped is not None

    def solver(self, solve_any):
        def solve(q, A, b, cones, tol, verbose=False):
            if self.max_seconds is None or self.name not in ("clarabel", "ipm") or self.solved:
                return solve_any(q, A, b, cones, tol, verbose)
            left = max(self.max_seconds - (time.perf_counter() - self.t0), 1e-3)
            out = solve_any(q, A, b, cones, tol, verbose, time_limit=left)  # the solver's own limit
            if out[1] == "MaxTime":
                raise TimeoutError(
                    f"certified_flattest: max_seconds = {self.max_seconds:g} ran out in the first cone solve "
                    f"({A.shape[1]} variables): no valid answer yet (raise max_seconds, or use fewer patterns)"
                )
            self.solved = True
            return out

        return solve
