"""``ra3bench audit``: can a code judge be fooled or escaped? (docs/audit.md)

A judge under audit (a reward function, evalplus, ra3bench itself) is shown hostile programs,
the suite's reference solutions and recorded model outputs; its scores are set against ra3bench's
verdicts and the side effects of each program are observed from outside the judge's process.
The contract is in ``base.py``; ``prepare.audit_judge`` is the entry a CLI, notebook or CI job calls.
"""

from ra3bench.audit.base import Finding, Item, Judge, Scorecard
from ra3bench.audit.prepare import AuditOptions, audit_judge

__all__ = ["AuditOptions", "Finding", "Item", "Judge", "Scorecard", "audit_judge"]
