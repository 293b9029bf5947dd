"""Where everything of one local pilot run lives, under one run directory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """The files and directories of one run; `root` is the run directory the caller chose."""

    root: Path

    @property
    def home(self) -> Path:
        """The pilot's home (its cwd): queue data, input replicas, the job directory, and, moved
        there by the `mv` copytool at stage-out, the outputs and the log tarball."""
        return self.root / "pilot-home"

    @property
    def harvester(self) -> Path:
        """Harvester's data and work directory, laid out as Harvester does: the pilot home itself.
        pandaJobData.out in, worker_attributes.json and event_status.dump.json out; pilot 3.11
        declares only outputs it finds under this directory in event_status.dump.json."""
        return self.home

    @property
    def job_data(self) -> Path:
        return self.harvester / "pandaJobData.out"

    @property
    def worker_attributes(self) -> Path:
        return self.harvester / "worker_attributes.json"

    @property
    def event_status(self) -> Path:
        """The outputs the pilot declares to Harvester for stage-out (LFN, GUID, size, checksum)."""
        return self.harvester / "event_status.dump.json"

    @property
    def www(self) -> Path:
        """Document root of the loopback HTTP server; the trf sits in its `trf/` folder."""
        return self.root / "www"

    @property
    def trf_dir(self) -> Path:
        return self.www / "trf"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def storage_data(self) -> Path:
        return self.site / "storagedata.json"

    @property
    def pilot_config(self) -> Path:
        return self.site / "pilot.cfg"

    @property
    def job_template(self) -> Path:
        """The job definition as given, before the harness points `transformation` at loopback."""
        return self.site / "job.json"

    @property
    def settings(self) -> Path:
        """What the sandbox needs to know: pilot options, trf name, time limit."""
        return self.site / "settings.json"

    @property
    def pilot_stdout(self) -> Path:
        """The pilot's console log (its pilotlog.txt is cut when the log tarball is made)."""
        return self.root / "pilot.stdout"

    @property
    def sandbox_log(self) -> Path:
        """The sandbox's own output: the trf server's requests, namespace errors."""
        return self.root / "sandbox.log"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def job_dir(self, panda_id: str) -> Path:
        """The job directory the pilot creates and runs the trf in."""
        return self.home / f"PanDA_Pilot-{panda_id}"
