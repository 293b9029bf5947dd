"""The names of the files the trf writes in the job directory, for every room that writes or guards one.

A name lives here rather than in the module that writes the file so that the argument-time check of
output names (wrapper.args.reserved) reads four strings without importing staging or checkpoints.
"""
import re

# The pilot's rule for logical file names (docs/design.md, 'The pilot contract'), which every name
# the trf gives a file in the job directory follows; check with fullmatch(), as `$` alone lets a
# trailing newline through.
LFN_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]{1,250}$")

JOB_REPORT = "jobReport.json"
ERROR_REPORT = "payload_error_report.json"
FILE_CATALOG = "PoolFileCatalog.xml"
CHECKPOINT_DIR = "checkpoints"
