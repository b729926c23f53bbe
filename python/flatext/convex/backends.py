"""The conic solver back ends: ``min q.x s.t. A x + s = b, s in (zero^n0 x R+^n1 x SOC...)``.

Each takes ``(q, A, b, cones, tol, verbose)`` with ``cones = (n0, n1, [soc dims])`` and
returns ``(x, status, objective, z)``; only Clarabel returns the dual ``z`` that pricing needs.
"""

from __future__ import annotations

import clarabel
import numpy as np
import scipy.sparse as sp


def _solve_clarabel(q, A, b, cones, tol, verbose=False, time_limit=None):

    n0, n1, socs = cones
    K = [clarabel.ZeroConeT(n0)]
    if n1:
        K.append(clarabel.NonnegativeConeT(n1))
    K += [clarabel.SecondOrderConeT(k) for k in socs]
    st = clarabel.DefaultSettings()
    st.verbose = verbose
    st.tol_gap_abs = tol
    st.tol_gap_rel = tol
    st.tol_feas = tol
    st.max_iter = 500
    if time_limit is not None:
        st.time_limit = float(time_limit)  # status "MaxTime" when it runs out
    P = sp.csc_matrix((A.shape[1], A.shape[1]))
    sol = clarabel.DefaultSolver(P, q, A, b, K, st).solve()
    status = str(sol.status).split(".")[-1]
    return np.asarray(sol.x), status, float(sol.obj_val), np.asarray(sol.z)


def _solve_scs(q, A, b, cones, tol, verbose=False):
    try:
        import scs
    except ImportError:
        raise ImportError("solver='scs' needs the scs package: pip install scs") from None
    n0, n1, socs = cones
    data = {"A": A, "b": b, "c": q}
    cone = {"z": n0, "l": n1, "q": list(socs)}
    sol = scs.solve(data, cone, eps_abs=tol, eps_rel=tol, verbose=verbose, max_iters=200000)
    status = sol["info"]["status"]
    return np.asarray(sol["x"]), status, float(sol["info"]["pobj"]), None


def _solve_ecos(q, A, b, cones, tol, verbose=False):
    try:
        import ecos
    except ImportError:
        raise ImportError("solver='ecos' needs the ecos package: pip install ecos") from None
    n0, n1, socs = cones
    A = A.tocsr()
    Aeq, G = A[:n0].tocsc(), A[n0:].tocsc()
    sol = ecos.solve(
        q,
        G,
        b[n0:],
        {"l": n1, "q": list(socs)},
        Aeq,
        b[:n0],
        verbose=verbose,
        abstol=tol,
        reltol=tol,
        feastol=tol,
        max_iters=200,
    )
    info = sol["info"]
    status = {0: "Solved", 10: "AlmostSolved"}.get(info["exitFlag"], f"exitFlag {info['exitFlag']}")
    return np.asarray(sol["x"]), status, float(info["pcost"]), None


def _solve_cvxpy(q, A, b, cones, tol, verbose=False):
    try:
        import cvxpy as cp
    except ImportError:
        raise ImportError("solver='cvxpy' needs cvxpy: pip install cvxpy") from None
    n0, n1, socs = cones
    x = cp.Variable(A.shape[1])
    A = A.tocsr()
    e = A @ x
    cons = [e[:n0] == b[:n0]]
    if n1:
        cons.append(b[n0 : n0 + n1] - e[n0 : n0 + n1] >= 0)
    off = n0 + n1
    for k in socs:
        s = b[off : off + k] - e[off : off + k]
        cons.append(cp.SOC(s[0], s[1:]))
        off += k
    prob = cp.Problem(cp.Minimize(q @ x), cons)
    prob.solve(solver=cp.CLARABEL, verbose=verbose)
    return np.asarray(x.value), str(prob.status), float(prob.value), None
