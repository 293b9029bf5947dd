"""Run a PanDA job through the real PanDA pilot (PyPI panda-pilot) on one machine, isolated.

Harvester PUSH mode with no PanDA server: the job from pandaJobData.out, queue and storage data from
local files, the trf served by a loopback HTTP server, heartbeats and the final state written to
files, all inside a PID and network namespace that holds only the pilot and loopback.

    from pilot_harness.run import PilotJob, run_job
    verdict = run_job(PilotJob(job=job_definition, inputs=[...], trf=Path("dune-payload.pyz")), run_dir)

`scripts/run_pilot_local.py` is the command-line form; docs/pilot.md the operator's guide.
"""
