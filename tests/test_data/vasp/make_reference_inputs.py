"""Regenerate the reference VASP inputs in this folder (run by hand after a deliberate change).

    .venv/bin/python tests/test_data/vasp/make_reference_inputs.py

Each <job>/inputs holds INCAR, KPOINTS, POSCAR and POTCAR.spec as mlipflow's named input sets
write them for the 28-atom olivine test cells (tests/labeling/helpers.py). Review the diff:
tests/labeling/test_vasp.py checks the generated inputs against these files.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "labeling"))

from labeling_helpers import olivine  # noqa: E402

from mlipflow.engines.vasp import aimd_preset, input_set_generator  # noqa: E402

JOBS = {
    "nafepo4_ace_static": ("nafepo4_ace", "static", "Na"),
    "nafepo4_ace_relax": ("nafepo4_ace", "relax", "Na"),
    "nafepo4_ace_md": ("nafepo4_ace", "md", "Na"),
    "lixfepo4_dpa_static": ("lixfepo4_dpa", "static", "Li"),
    "lixfepo4_dpa_relax": ("lixfepo4_dpa", "relax", "Li"),
}

if __name__ == "__main__":
    for job, (set_name, kind, alkali) in JOBS.items():
        kw = {}
        if kind == "md":
            p = aimd_preset(set_name)
            kw = dict(ensemble="nvt", start_temp=p["temperature"], end_temp=p["temperature"], nsteps=p["steps"], time_step=p["timestep_fs"])
        vi = input_set_generator(set_name, kind, **kw).get_input_set(olivine(alkali), potcar_spec=True)
        out = HERE / job / "inputs"
        out.mkdir(parents=True, exist_ok=True)
        vi["INCAR"].write_file(out / "INCAR")
        vi["KPOINTS"].write_file(out / "KPOINTS")
        vi["POSCAR"].write_file(out / "POSCAR")
        (out / "POTCAR.spec").write_text(vi["POTCAR.spec"] + "\n")
        print("wrote", out)
