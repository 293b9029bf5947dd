"""The names of the files the trf writes in the job directory, for every room that writes or guards one.

A name lives here rather than in the module that writes the file so that the argument-time check of
output names (wrapper.args.reserved) reads four strings without importing staging or checkpoints.
"""
JOB_REPORT = "jobReport.json"
ERROR_REPORT = "payload_error_report.json"
FILE_CATALOG = "PoolFileCatalog.xml"
CHECKPOINT_DIR = "checkpoints"
