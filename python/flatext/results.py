"""The fields every solver's and trainer's result shares (``docs/design.md`` section 13).

Modelled on :class:`scipy.optimize.OptimizeResult`: whatever produced it, a result
(:class:`~flatext.InterpolationResult`, :class:`~flatext.SearchResult`,
:class:`~flatext.TrainResult`, :class:`~flatext.ConvexResult`) answers

- ``W, a``: the point returned (the polished one where a polish improved it);
- ``reason``: why the method stopped, one short word (``"tol"``, ``"gtol"``, ``"max_iter"``, ...);
- ``message``: the same in a sentence, with what else happened (the polish, a fallback);
- ``converged``: ``reason in type(result).CONVERGED_REASONS``, i.e. the method stopped at
  its own success test (never "the loss happens to be small when it stopped");
- ``iterations``: the steps (or pricing rounds) the method ran;
- ``history``: the per-iteration record, a dict of equal-length 1-D arrays
  (:class:`~flatext.InterpolationResult`: one array, ``max|r|`` per step; ``ConvexResult``: empty);

and, where the method has a polish, ``polish`` (what it did, a word such as ``"off"``,
``"improved"``, ``"converged"``, ``"no improvement"``, ``"failed..."``) and
``polished`` (``W, a`` come from the polish). Each result class declares its
``CONVERGED_REASONS``; construction checks that ``converged`` agrees with it.
"""

from __future__ import annotations

from typing import ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np

__all__ = ["COMMON_FIELDS", "Result", "ResultFields"]

#: The names every result answers (attributes or properties).
COMMON_FIELDS = ("W", "a", "reason", "message", "converged", "iterations", "history")


@runtime_checkable
class Result(Protocol):
    """The common part of every result, for type annotations (read-only)."""

    @property
    def CONVERGED_REASONS(self) -> tuple[str, ...]: ...

    @property
    def W(self) -> np.ndarray: ...

    @property
    def a(self) -> np.ndarray: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def converged(self) -> bool: ...

    @property
    def iterations(self) -> int: ...

    @property
    def history(self) -> dict | np.ndarray: ...


class _Declared(Result, Protocol):
    """What :class:`ResultFields`' methods read: the common fields and the class's settings."""

    @property
    def REASON_IF_UNSET(self) -> tuple[str, str] | None: ...

    @property
    def REPR_FIELDS(self) -> tuple[str, ...]: ...

    @property
    def REASON_MESSAGES(self) -> Mapping[str, str]: ...


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return repr(v)


class ResultFields:
    """Mixin of the result dataclasses: the ``converged`` check and the common ``__repr__``.

    A subclass sets ``CONVERGED_REASONS`` (the stop reasons that are its method's own
    success test), optionally ``REASON_IF_UNSET`` (the reasons an empty ``reason`` means
    for ``converged`` True and False, so that positional construction without a reason
    keeps working), ``REASON_MESSAGES`` (the sentence an empty ``message`` becomes) and
    ``REPR_FIELDS`` (what its repr shows after the common fields).
    Dataclasses using it pass ``repr=False`` (else the generated repr replaces this one).
    """

    CONVERGED_REASONS: ClassVar[tuple[str, ...]] = ()
    REASON_IF_UNSET: ClassVar[tuple[str, str] | None] = None
    REPR_FIELDS: ClassVar[tuple[str, ...]] = ()
    REASON_MESSAGES: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self: _Declared) -> None:
        if self.REASON_IF_UNSET is not None and not self.reason:
            object.__setattr__(self, "reason", self.REASON_IF_UNSET[0 if self.converged else 1])
        if not self.message and self.reason in self.REASON_MESSAGES:
            object.__setattr__(self, "message", self.REASON_MESSAGES[self.reason])
        if bool(self.converged) != (self.reason in self.CONVERGED_REASONS):
            raise ValueError(
                f"{type(self).__name__}: converged={self.converged!r} disagrees with reason={self.reason!r} "
                f"(converged means reason in {self.CONVERGED_REASONS})"
            )

    def __repr__(self: _Declared) -> str:
        parts = []
        if np.ndim(self.W) == 2:
            m, d = np.shape(self.W)
            parts.append(f"m={m}, d={d}")
        parts += [f"reason={self.reason!r}", f"converged={self.converged}", f"iterations={self.iterations}"]
        parts += [f"{k}={_fmt(getattr(self, k))}" for k in self.REPR_FIELDS]
        return f"{type(self).__name__}({', '.join(parts)})"
