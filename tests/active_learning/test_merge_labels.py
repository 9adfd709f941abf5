"""merge_labels: failed labels and (with select.max_label_force) strained labels stay out of the
dataset, each counted and the strained ones recorded with their force (real embedded store)."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

from mlipflow.engines.frames import make_frame, max_force_component
from mlipflow.makers.active_learning import dataset_version, merge_labels
from mlipflow.schemas.potentials import ALIterationDoc


def _frame(k: int, fmax: float | None, failed: bool = False):
    rng = np.random.default_rng(k)
    s = Structure(Lattice.cubic(6.0), ["Na", "O"], rng.uniform(0, 1, (2, 3)))
    forces = None if fmax is None else [[fmax, 0.0, 0.0], [-fmax, 0.0, 0.0]]
    return make_frame(s, frame_id=f"f{k:03d}", labeler="test", energy=-5.0 - 0.01 * k, forces=forces,
                      failure_reason="SCF not converged" if failed else None, source="al-iteration-1")


def test_max_label_force_keeps_strained_labels_out(store):
    parent = dataset_version("merge-test", [_frame(k, 1.0) for k in range(5)], test_fraction=0.2).ref
    doc = ALIterationDoc(iteration=1, dataset=parent, campaign="c")
    new = [_frame(10, 5.0), _frame(11, 29.9), _frame(12, 30.5), _frame(13, 80.0), _frame(14, 2.0, failed=True)]
    assert max_force_component(new[3]) == 80.0

    out = merge_labels.original(doc, [new, None], max_label_force=30.0)
    assert (out.n_labeled, out.n_label_failed, out.n_label_rejected) == (2, 1, 2)
    assert [r.split(":")[0] for r in out.label_rejections] == ["f012", "f013"]
    assert "80.0 eV/Å above select.max_label_force 30" in out.label_rejections[1]
    from mlipflow.engines.repository import load_dataset

    ds, _ = load_dataset(out.dataset.name, out.dataset.version, with_frames=False)
    assert ds.version == parent.version + 1
    assert {"f010", "f011"} <= set(ds.frame_ids) and not {"f012", "f013", "f014"} & set(ds.frame_ids)

    # without the option, only the failed label is excluded
    out = merge_labels.original(ALIterationDoc(iteration=1, dataset=parent, campaign="c"), [new])
    assert (out.n_labeled, out.n_label_failed, out.n_label_rejected) == (4, 1, 0)
    assert out.label_rejections == []
