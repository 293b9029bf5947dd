"""panda-server's and JEDI's configuration files for the local stack, under `$PANDA_HOME/etc/panda/`.

Both read `panda_server.cfg` / `panda_jedi.cfg` / `panda_common.cfg` from /etc/panda, ~/etc/panda
and then `$PANDA_HOME/etc/panda` (pandacommon's LiveConfigParser; the last one read wins). The
values follow the templates panda-server 1.0.4 installs (`etc/panda/*.rpmnew`), trimmed to what a
one-machine stack needs: PostgreSQL on loopback, the dummy data-service plugins of a non-ATLAS VO
(by their module paths in 1.0.4: the template's `dataservice.AdderDummyPlugin` no longer imports,
panda_config.parsePluginConf drops it silently and the Setupper falls back to the ATLAS plugin,
which needs Rucio; there is no closer plugin for a non-ATLAS VO),
JEDI with few workers and short cycles for the generic VO classes (GenTaskRefiner, GenJobBroker,
GenDDMClient, ...), configured for the VOs the stack serves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.panda_local import database


@dataclass(frozen=True)
class Endpoints:
    """Where the server listens and who may act as production."""

    http_port: int
    https_port: int
    production_dns: tuple


# JEDI agents panda_jedi.cfg makes JediMaster start, one each: task refiner, task broker, contents
# feeder, job generator, post-processor, task commando, watchdog (for the one VO of VOS).
JEDI_AGENTS = 7


def _vo_list(vos: tuple, module: str) -> str:
    return ",".join(f"{vo}:any:{module}" for vo in vos)


def write(home: Path, db: database.Database, endpoints: Endpoints, vos: tuple, log_dir: Path,
          cache_dir: Path) -> Path:
    """Write the three files; returns `$PANDA_HOME/etc/panda`."""
    etc = Path(home) / "etc" / "panda"
    etc.mkdir(parents=True, exist_ok=True)
    vo_pipe = "|".join(vos)
    # pandacommon's "panda.mon" logger posts messages to `loghost` over HTTP: a loopback port where
    # nothing listens (the discard port), so each post is refused at once and nothing leaves.
    (etc / "panda_common.cfg").write_text(f"""[logger]
loghost = 127.0.0.1
monport-apache = 9
method = POST
encoding = json
monurlprefix = /logger/logger/query
logdir = {log_dir}
log_level = DEBUG
rotating_policy = none
""")
    # Server and JEDI share the database and its schema names (DOMA_*: the PostgreSQL schema's).
    db_lines = f"""dbhost = 127.0.0.1
dbport = {db.port}
dbuser = {database.DB_USER}
dbpasswd = {database.DB_PASSWORD}
dbname = {database.DB_NAME}
backend = postgres
schemaPANDA = DOMA_PANDA
schemaMETA = DOMA_PANDAMETA
schemaPANDAARCH = DOMA_PANDAARCH
schemaJEDI = DOMA_PANDA
schemaDEFT = DOMA_DEFT"""
    (etc / "panda_server.cfg").write_text(f"""[server]
logdir = {log_dir}
loggername = prod
cache_dir = {cache_dir}
{db_lines}
nDBConnection = 4
usedbtimeout = True
dbtimeout = 300
pserverhost = 127.0.0.1
pserveralias = 127.0.0.1
pserverport = {endpoints.https_port}
pserverhosthttp = 127.0.0.1
pserverporthttp = {endpoints.http_port}
pserverportcache = {endpoints.https_port}
entryVerbose = False
record_statuschange = True
useJEDI = True
adder_plugins = {vo_pipe}:pandaserver.dataservice.adder_dummy_plugin:AdderDummyPlugin
setupper_plugins = {vo_pipe}:pandaserver.dataservice.setupper_dummy_plugin:SetupperDummyPlugin
token_authType = None
legacy_token_issuers =
auth_config = {home}/auth
production_dns = {",".join(endpoints.production_dns)}
emailSMTPsrv = 127.0.0.1
emailSender = panda@127.0.0.1
emailLogin = panda
emailPass = unused

[daemon]
enable = True
package = pandaserver.daemons.scripts
n_proc = 1
n_dbconn = 1
proc_lifetime = 14400
config = {{"add_main": {{"enable": true, "period": 5, "loop": true}}}}
""")
    (etc / "panda_jedi.cfg").write_text(f"""[master]
loggername = jedi

[db]
{db_lines}
nWorkers = 2

[ddm]
modConfig = {",".join(f"{vo}:1:pandajedi.jediddm.GenDDMClient:GenDDMClient" for vo in vos)}
voWithScope = atlas
user_scope_in_lowercase = True

[confeeder]
procConfig = {";".join(f"{vo}:any:1" for vo in vos)}
nWorkers = 1
loopCycle = 3
checkInterval = 1

[taskrefine]
modConfig = {_vo_list(vos, "pandajedi.jedirefine.GenTaskRefiner:GenTaskRefiner")}
procConfig = ::1
nWorkers = 1
loopCycle = 3

[jobbroker]
modConfig = {_vo_list(vos, "pandajedi.jedibrokerage.GenJobBroker:GenJobBroker")}

[jobthrottle]
modConfig = {_vo_list(vos, "pandajedi.jedithrottle.GenJobThrottler:GenJobThrottler")}

[jobgen]
procConfig = {";".join(f"{vo}:any:1:" for vo in vos)}
nTasks = 50
nFiles = 5000
nWorkers = 1
loopCycle = 3
lockInterval = 1
typicalNumFile = :::logmerge:1000000

[postprocessor]
modConfig = {_vo_list(vos, "pandajedi.jedipprocess.GenPostProcessor:GenPostProcessor")}
procConfig = ::1
nWorkers = 1
nTasks = 50
loopCycle = 5

[watchdog]
modConfig = {_vo_list(vos, "pandajedi.jedidog.GenWatchDog:GenWatchDog")}
procConfig = {";".join(f"{vo}:any:1" for vo in vos)}
loopCycle = 300
waitForPicked = 30
waitForPending = 60
timeoutForPending = 7
waitForLocked = 60
waitForThrottled = 120
waitForExhausted = 48
waitForAchieved = 60

# JediMaster starts a task broker for every procConfig entry; task brokerage is ATLAS's (the
# template's own entry, for another VO, keeps the one process idle).
[taskbroker]
modConfig = atlas:managed|test:pandajedi.jedibrokerage.AtlasProdTaskBroker:AtlasProdTaskBroker
procConfig = wlcg:managed:1
nWorkers = 1
loopCycle = 600

[tcommando]
procConfig = ::1
nWorkers = 1
loopCycle = 5

[tasksetup]
modConfig = {_vo_list(vos, "pandajedi.jedisetup.GenTaskSetupper:GenTaskSetupper")}

[msgprocessor]

[mq]
""")
    return etc
