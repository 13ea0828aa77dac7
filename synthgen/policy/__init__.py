"""Access policy: YAML policy files evaluated with pycasbin, and the hash-chained audit trail."""

from synthgen.policy.audit import AuditLog, AuditReport, audit_path, verify_audit
from synthgen.policy.engine import Decision, Policy, Resource, load_policy, policy_origin, policy_paths

__all__ = [
    "AuditLog",
    "AuditReport",
    "Decision",
    "Policy",
    "Resource",
    "audit_path",
    "load_policy",
    "policy_origin",
    "policy_paths",
    "verify_audit",
]
