"""Suite-wide settings.

Torch runs on one thread in the tests: the suite runs on a shared 2-core
machine, where OpenMP's default of one thread per core, oversubscribed by
other processes (or by the ``n_jobs=2`` tests' workers), made small forward
passes up to 100x slower. Subprocesses started by the tests inherit the
same setting through ``OMP_NUM_THREADS``. Results do not depend on it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch

torch.set_num_threads(1)
