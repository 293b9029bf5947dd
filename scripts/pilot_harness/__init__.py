"""Run a PanDA job through a real PanDA pilot on one machine, isolated: pilot3 3.11.5.1 from its
source tarball, or PyPI's panda-pilot 3.7.0.36 (`scripts.pilot_harness.pilots`).

Harvester PUSH mode with no PanDA server: the job from pandaJobData.out, queue and storage data from
local files, the trf served by a loopback HTTP server, heartbeats and the final state written to
files, all inside a PID and network namespace that holds only the pilot and loopback.

    from scripts.pilot_harness import pilots
    from scripts.pilot_harness.run import PilotJob, run_job
    pilot = pilots.pilot3(pilots.unpack(Path("/tmp/pilot3-src")))
    verdict = run_job(PilotJob(job=job_definition, inputs=[...], trf=Path("dune-payload.pyz"),
                               pilot=pilot), run_dir)

`python -m scripts.tools.run_pilot_local` is the command-line form; docs/pilot.md the operator's guide.
"""
