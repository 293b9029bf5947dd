"""generic's `diagnose`, with interpret() using this plugin's update_job_data.

generic's interpret() binds generic's own update_job_data at import, so it is wrapped here rather
than re-exported: the report's GUIDs are set first, and generic then fills only what is missing.
"""
from pilot.user.dune.common import update_job_data
from pilot.user.generic import diagnose as generic


def __getattr__(name: str):
    """Everything this module does not define is generic's (PEP 562)."""
    return getattr(generic, name)


def interpret(job) -> int:
    """Apply the trf's report to the job, then generic's interpretation of the payload output."""
    update_job_data(job)
    return generic.interpret(job)
