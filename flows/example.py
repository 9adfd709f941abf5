"""A tiny real dynamic flow: golden-section search of the fcc-Cu lattice constant with ASE's EMT.

Each iteration is one job that evaluates EMT energies, narrows the bracket and, unless the
bracket is below ``tol``, replaces itself with the next iteration (``Response(replace=...)``)
— the same mechanism as the active-learning loop, small enough for `mlipflow doctor`-style
smoke runs, the README's first command and the FireWorks tests.
"""

from __future__ import annotations

import math

from jobflow import Flow, Response, job
from pydantic import Field

from mlipflow.schemas.base import MlipflowDocument, content_hash
from mlipflow.schemas.md import CampaignDoc

GOLDEN = (math.sqrt(5) - 1) / 2


class EOSIterationDoc(MlipflowDocument):
    """One iteration of the lattice-constant search."""

    doc_type = "eos_iteration"
    iteration: int = Field(..., description="Iteration number.")
    bracket: tuple[float, float] = Field(..., description="Lattice-constant bracket after this step (Å).")
    a_best: float = Field(..., description="Best lattice constant so far (Å).")
    energy_best: float = Field(..., description="EMT energy per atom at a_best (eV/atom).")
    converged: bool = Field(False, description="Bracket narrower than tol.")


def _energy(a: float, element: str) -> float:
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk(element, "fcc", a=a)
    atoms.calc = EMT()
    return float(atoms.get_potential_energy() / len(atoms))


@job
def eos_step(lo: float, hi: float, element: str = "Cu", tol: float = 1e-3, iteration: int = 0,
             max_iterations: int = 60, campaign: str | None = None):
    """Narrow [lo, hi] by one golden-section step; replace itself until converged."""
    x1 = hi - GOLDEN * (hi - lo)
    x2 = lo + GOLDEN * (hi - lo)
    e1, e2 = _energy(x1, element), _energy(x2, element)
    lo, hi = (lo, x2) if e1 < e2 else (x1, hi)
    a_best, e_best = (x1, e1) if e1 < e2 else (x2, e2)
    converged = (hi - lo) < tol
    doc = EOSIterationDoc(
        iteration=iteration, bracket=(lo, hi), a_best=a_best, energy_best=e_best,
        converged=converged, campaign=campaign,
        input_hash=content_hash("eos", element, lo, hi, tol, iteration),
    )
    if converged or iteration + 1 >= max_iterations:
        return doc
    nxt = eos_step(lo, hi, element=element, tol=tol, iteration=iteration + 1,
                   max_iterations=max_iterations, campaign=campaign)
    nxt.name = f"eos_step_{iteration + 1}"
    return Response(output=doc, replace=nxt)


@job
def summarize(result: EOSIterationDoc, campaign: str | None = None, element: str = "Cu") -> CampaignDoc:
    """Campaign document for the example."""
    return CampaignDoc(
        name=campaign or "example", campaign=campaign, status="completed",
        config={"flow": "example_eos", "element": element},
        summary={"iterations": result.iteration + 1, "a_best_A": result.a_best,
                 "energy_best_eV_atom": result.energy_best, "converged": result.converged},
    )


def eos_bisection_flow(campaign: str = "example", element: str = "Cu", lo: float = 3.0,
                       hi: float = 4.2, tol: float = 1e-3, max_iterations: int = 60) -> Flow:
    """Flow: iterative EMT lattice-constant search followed by a campaign summary."""
    step = eos_step(lo, hi, element=element, tol=tol, max_iterations=max_iterations, campaign=campaign)
    step.name = "eos_step_0"
    summ = summarize(step.output, campaign=campaign, element=element)
    summ.name = "summarize"
    return Flow([step, summ], output=summ.output, name=f"{campaign}:example_eos")
