"""ASE's EMT, slowed down and counted, for the fault-injection tests.

Every ``calculate`` appends a line (a hash of the numbers, cell and positions) to the file named
by ``MLIPFLOW_TEST_CALC_LOG`` and sleeps ``MLIPFLOW_TEST_CALC_SLEEP`` seconds, so that a kill lands
inside a labelling stage and the test can check that no reference calculation ran twice over all
the killed runs and reruns. Its numbers are EMT's.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT


class CountingEMT(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        key = hashlib.sha1(np.asarray(a.numbers).tobytes() + np.round(a.cell.array, 8).tobytes()
                           + np.round(a.positions, 8).tobytes()).hexdigest()
        path = os.environ.get("MLIPFLOW_TEST_CALC_LOG")
        if path:
            with open(path, "a") as fh:
                fh.write(f"{key}\n")
        time.sleep(float(os.environ.get("MLIPFLOW_TEST_CALC_SLEEP", "0")))
