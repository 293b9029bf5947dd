"""Staging: every input resolved, fetched and verified; outputs and checkpoints published.

Inputs come, in this order, from the job directory (an LFN the pilot staged), PoolFileCatalog.xml,
`s3://` (boto3), `https://` (requests) or a local path; see `resolve` for the rules and `stage`
for the flow. Failures raise InputFileError (exit 9) or OutputFileError (exit 11) with a `cause`
from wrapper.causes. boto3 and requests are imported only by the functions that use them, so
argument errors stay fast.

    options = StagingOptions(workdir=Path.cwd(), access_mode="copy")
    staged = stage_inputs(["s3://events/run1/*.h5", "ev.h5#ad:1a2b3c4d"], options)
    report["staging"] = [report_entry(s) for s in staged]
    publish_outputs([Path.cwd() / "pred.h5"], options)
"""
from wrapper.staging.options import StagingOptions
from wrapper.staging.results import PublishedOutput, StagedInput, report_entry
from wrapper.staging.stage import open_direct_source, resolve_one, stage_inputs
from wrapper.staging.upload import publish_outputs

__all__ = ["StagingOptions", "StagedInput", "PublishedOutput", "stage_inputs", "resolve_one",
           "publish_outputs", "report_entry", "open_direct_source"]
