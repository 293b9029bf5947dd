"""panda-server's WSGI application behind plain HTTP and HTTPS listeners on 127.0.0.1.

Run by the server's own interpreter (the PanDA venv), not the project's:

    PANDA_HOME=DIR python front.py DIR/front.json

In production panda-server runs under Apache's mod_wsgi, with mod_ssl verifying the client's
certificate and gridsite exporting its DN and VOMS attributes into the WSGI environment. This is
the part of that stack the application reads (shared/panda-database/NOTES.md): `SCRIPT_NAME` holds
the whole path (mod_wsgi's WSGIScriptAliasMatch), an empty `CONTENT_LENGTH` reads as 0, and an HTTPS
request with a certificate our CA signed gets `SSL_CLIENT_S_DN` (OpenSSL's /-form, as with
`SSLOptions +LegacyDNStringFormat`), `HTTPS=on` and one `GRST_CRED_AUTH_TOKEN_<n>` = "VOMS <fqan>"
per FQAN. A proxy's VOMS attributes come from a VOMS server; here the stack's configuration names
the FQANs of each test identity. A request without a verified certificate carries no identity,
and request headers can never set one (WSGI prefixes them with HTTP_).
"""
from __future__ import annotations

import json
import os
import signal
import socketserver
import ssl
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

RDN_NAMES = {"domainComponent": "DC", "commonName": "CN", "organizationName": "O",
             "organizationalUnitName": "OU", "countryName": "C", "localityName": "L"}


def dn_of(certificate: dict) -> str:
    """The subject of a certificate from SSLSocket.getpeercert() in OpenSSL's /-separated form."""
    return "".join(f"/{RDN_NAMES.get(key, key)}={value}" for rdn in certificate.get("subject", ())
                   for key, value in rdn)


class _Handler(WSGIRequestHandler):
    fqans: dict = {}

    def get_environ(self):
        environ = super().get_environ()
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = environ.get("PATH_INFO", ""), ""
        if not environ.get("CONTENT_LENGTH"):
            environ["CONTENT_LENGTH"] = "0"
        if isinstance(self.connection, ssl.SSLSocket):
            environ["HTTPS"], environ["wsgi.url_scheme"] = "on", "https"
            peer = self.connection.getpeercert()
            if peer:
                dn = dn_of(peer)
                environ["SSL_CLIENT_S_DN"] = dn
                for index, fqan in enumerate(self.fqans.get(dn, ())):
                    environ[f"GRST_CRED_AUTH_TOKEN_{index}"] = f"VOMS {fqan}"
        return environ

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        sys.stdout.write("front: %s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def setup_environ(self):
        # wsgiref starts every request's environment from a copy of os.environ (CGI style);
        # mod_wsgi does not, and the server's own environment is no business of a client's.
        self.base_environ = {"SERVER_NAME": self.server_name, "GATEWAY_INTERFACE": "CGI/1.1",
                             "SERVER_PORT": str(self.server_port), "REMOTE_HOST": "",
                             "CONTENT_LENGTH": "", "SCRIPT_NAME": ""}

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's own thread, so one slow client stalls nobody.
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                sys.stdout.write(f"front: TLS handshake with {client_address[0]} failed: {exc}\n")
                return
        super().finish_request(request, client_address)


def serve(settings: dict) -> None:
    """Both listeners, until SIGTERM or SIGINT."""
    from pandaserver.server.panda import application

    _Handler.fqans = {dn: tuple(fqans) for dn, fqans in settings["fqans"].items()}
    servers = []
    for port, secure in ((settings["http_port"], False), (settings["https_port"], True)):
        server = _Server(("127.0.0.1", port), _Handler)
        server.set_app(application)
        if secure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(settings["host_cert"], settings["host_key"])
            context.load_verify_locations(cafile=settings["ca_cert"])
            context.verify_mode = ssl.CERT_OPTIONAL
            server.tls = context
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"front: serving http://127.0.0.1:{settings['http_port']} and https://127.0.0.1:"
          f"{settings['https_port']}", flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        serve(json.load(handle))
    os._exit(0)
