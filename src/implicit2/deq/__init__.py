"""Deep equilibrium machinery: fixed-point solvers and backward passes."""

from implicit2.deq.gradients import (
    GRADIENTS,
    attach_backward,
    attach_implicit,
    attach_onestep,
    unrolled,
)
from implicit2.deq.solvers import (
    SOLVERS,
    Solver,
    SolverStats,
    anderson,
    broyden,
    fixed_point,
    get_solver,
)

__all__ = [
    "GRADIENTS",
    "SOLVERS",
    "Solver",
    "SolverStats",
    "anderson",
    "attach_backward",
    "attach_implicit",
    "attach_onestep",
    "broyden",
    "fixed_point",
    "get_solver",
    "unrolled",
]
