"""Claims: each paper's statements as experiments with verdicts, one package per paper.

Every package follows :mod:`lrlab.claims.protocol`; :mod:`lrlab.driver` runs them
(``lrlab verify``, ``lrlab report``).
"""

from __future__ import annotations

from . import huang2020, lewkowycz2020, li2019_patch, li2019_toy, lu2023, you2019
from .protocol import Claim, Execution, IntervalExecution, Job, JobContext, Resources, Tables

CLAIMS = {m.NAME: m for m in (li2019_toy, li2019_patch, lewkowycz2020, you2019, huang2020, lu2023)}
"""Every claim by its command-line name, in the order reports list them."""

__all__ = ["CLAIMS", "Claim", "Execution", "IntervalExecution", "Job", "JobContext", "Resources", "Tables"]
