"""Reproducible job ids for local campaign runs: a rerun writes over the same documents.

jobflow gives every job, flow and stored blob a random UUID (``jobflow.utils.uid.suid``) and
stores outputs keyed by ``(uuid, index)``. A campaign that is killed and run again is rebuilt
with new UUIDs, so every job that had finished before the kill would add a second copy of its
output. Inside :func:`reproducible_uuids` the ids are instead UUID-5 names derived from

* the campaign's hash and the order of creation while the flow is built, and
* inside a running job (``jobflow.CURRENT_JOB``), that job's ``uuid:index`` and the order of
  creation within it (the jobs a dynamic step adds, the blobs its output stores).

Building and running the same campaign therefore produces the same ids, and the store's
``update`` on ``(uuid, index)`` replaces what the killed run wrote instead of adding to it.
Only ``mlipflow run`` uses this; ``submit`` keeps random ids (a queue may hold the same campaign
twice).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

#: Namespace of mlipflow's UUID-5 job ids.
NAMESPACE = uuid.UUID("6f0d3c1e-7a0b-5c8e-9d52-3f1a2b4c5d6e")

_MODULES = ("jobflow.utils.uid", "jobflow.core.job", "jobflow.core.flow")


@contextmanager
def reproducible_uuids(seed: str) -> Iterator[None]:
    """Within the block, jobflow's ``suid`` returns ids reproducible from ``seed`` (see module)."""
    import importlib

    from jobflow import CURRENT_JOB

    counts: Counter = Counter()

    def suid(id_type: str | None = None) -> str:  # noqa: ARG001 - same signature as jobflow's
        job = getattr(CURRENT_JOB, "job", None)
        scope = f"{job.uuid}:{job.index}" if job is not None else seed
        counts[scope] += 1
        return str(uuid.uuid5(NAMESPACE, f"{scope}/{counts[scope]}"))

    mods = [importlib.import_module(m) for m in _MODULES]
    saved = [m.suid for m in mods]
    for m in mods:
        m.suid = suid
    try:
        yield
    finally:
        for m, s in zip(mods, saved):
            m.suid = s


def current_job_uuid() -> str | None:
    """The uuid of the running jobflow job (None outside one): what a fit records in its
    potential's reference, so later jobs can name the output that holds the files."""
    from jobflow import CURRENT_JOB

    return getattr(getattr(CURRENT_JOB, "job", None), "uuid", None)
