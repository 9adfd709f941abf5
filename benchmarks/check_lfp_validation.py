"""The LixFePO4 validation (SI II.A) with the reference labeler standing in for the potential.

    .venv/bin/python benchmarks/check_lfp_validation.py [--campaign lfp-mini] [--structures 1] [--steps 30]

Reads the campaign's ``lfp_labeling`` document from the configured store (run the campaign first)
and runs :class:`mlipflow.makers.lfp.LfpValidationMaker`'s validation with the labeler's own ASE
calculator (CHGNet for the mini profile) in place of the fine-tuned model. The reference should
recover its own Fe valence configurations from frames before convergence and small perturbations,
and its relaxed Fe–O radii should be bimodal: a check that the method (magnetic-moment reference,
two-Gaussian radius boundary, site-by-site comparison) is right, independent of the model's quality.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaign", default="lfp-mini")
    ap.add_argument("--structures", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--fmax", type=float, default=0.05)
    args = ap.parse_args()

    import mlipflow.engines.potentials as potentials
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.makers.lfp import LfpValidationMaker
    from mlipflow.schemas import PotentialRef
    from mlipflow.schemas.base import as_data
    from mlipflow.schemas.lfp import LfpLabelingDoc
    from mlipflow.store import query_outputs

    docs = query_outputs(doc_type="lfp_labeling", campaign=args.campaign, limit=1)
    if not docs:
        raise SystemExit(f"no lfp_labeling document of campaign {args.campaign!r}: run the campaign first")
    lab = LfpLabelingDoc.model_validate(as_data(docs[0]["output"]))
    lab.validation = lab.validation[: args.structures]
    calc = get_labeler(lab.labeler).calculator
    potentials.calculator = lambda *a, **k: calc  # the reference labeler as the "potential"
    doc = LfpValidationMaker(fmax=args.fmax, steps=args.steps)._validate(
        PotentialRef(kind="dp", name=f"{lab.labeler} (reference)"), lab)
    print(json.dumps({"reference_valence": doc.reference_valence, "relaxed_gmm_means_A": doc.gmm.get("means_A"),
                      "boundary_A": doc.boundary_A,
                      "rates": {r.start: f"{r.n_recovered}/{r.n}" for r in doc.rates},
                      "cases": [c.model_dump() for c in doc.cases]}, indent=1))


if __name__ == "__main__":
    main()
