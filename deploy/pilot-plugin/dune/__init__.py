"""DUNE's user plugin for the PanDA pilot (pilot/user/dune/, chosen with `--pilot-user dune`).

It is the generic plugin plus what the DUNE trf's jobReport.json tells PanDA: nEvents, the
output GUIDs the trf wrote (checked against the files), GPU/build job metrics, the trf's error
when payload_error_report.json is missing. See deploy/pilot-plugin/README.md.

The pilot imports `pilot.user.<user>.<module>` by name for a dozen modules (common, container,
setup, proxy, …). Only the modules in this folder change anything; every other module of the
generic plugin is registered under this package's name, so those imports get generic's own
module objects and no generic code is copied here.
"""
import importlib
import pkgutil
import sys

from pilot.user import generic

_OWN = {"common", "diagnose", "jobmetrics", "jobreport"}

for _module in pkgutil.iter_modules(generic.__path__):
    if _module.name not in _OWN:
        sys.modules.setdefault(f"{__name__}.{_module.name}",
                               importlib.import_module(f"{generic.__name__}.{_module.name}"))
