"""The project's scripts, run from the repository root as `python -m scripts.<group>.<name>`.

Groups: `bench` (the benchmark driver `run` and each area's benchmark), `physics` (the reference
network's training and its figures), `jedi` (task definition and GPU brokerage for JEDI), `tools`
(the single-file trf builder, build manifests, one pilot job by hand), `pilot_harness` (the real
PanDA pilot on this machine) and `panda_local` (a real panda-server and JEDI on loopback). The shell
scripts at the top (demo, test, setup_env, device_check) are the commands the README starts with.
"""
