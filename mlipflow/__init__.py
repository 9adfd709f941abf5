"""mlipflow: MLIPs by batch active learning, and the MD campaigns that use them.

Subpackages map the repository's top-level folders: ``mlipflow.schemas`` (documents),
``mlipflow.makers`` (jobflow makers), ``mlipflow.flows`` (flows), ``mlipflow.analysis``
(pure numpy), ``mlipflow.engines`` (VASP/pacemaker/DeePMD/LAMMPS/ASE adapters),
``mlipflow.generation`` (structures). The package root (``mlipflow/``) holds settings, store and CLI.
"""

__version__ = "0.1.0"
