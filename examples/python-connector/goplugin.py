"""The go-plugin side of a dsync plugin, in Python.

dsync starts plugins with hashicorp/go-plugin. A plugin in any language
takes part by doing what go-plugin's Go server does:

1. refuse to run unless the magic cookie DSYNC_PLUGIN is set (so that it is
   not started by hand by mistake);
2. serve gRPC on a unix socket, with the plugin's services, the standard
   health service reporting SERVING for the service name "plugin", and
   plugin.GRPCController/Shutdown for a clean stop;
3. mutual TLS ("AutoMTLS"): the host passes its certificate in
   PLUGIN_CLIENT_CERT; the plugin makes a self-signed certificate of its own,
   serves TLS with it and requires the host's certificate from clients;
4. print one handshake line on stdout:
   1|1|unix|/path/to/socket|grpc|<own certificate, base64 DER, no padding>
5. exit when the host goes away, even if it was killed.

serve() does all of this; the caller only registers its services. Logs go to
stderr as JSON lines ("@level", "@message"), which the host re-logs at their
level under the plugin's name.
"""

import base64
import ctypes
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc_controller_pb2  # noqa: E402
import grpc_controller_pb2_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

# The handshake constants of dsync's plugin protocol (internal/wire.Handshake).
MAGIC_COOKIE_KEY = "DSYNC_PLUGIN"
MAGIC_COOKIE_VALUE = "d5f1c0e7-8a1b-4c52-9e0f-3c7b2a6d9e41"
CORE_PROTOCOL_VERSION = 1  # go-plugin's own protocol
APP_PROTOCOL_VERSION = 1  # dsync plugin protocol v1

# dsync allows 64 MiB messages both ways: documents may be 16 MiB.
MAX_MESSAGE_BYTES = 64 << 20

# How often the parent watchdog looks for a new parent.
PARENT_POLL_SECONDS = 0.5


def log(level, message, **fields):
    """Writes one hclog-style JSON line to stderr."""
    entry = {
        "@level": level,
        "@message": message,
        "@timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    }
    entry.update(fields)
    try:
        sys.stderr.write(json.dumps(entry, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def make_certificate():
    """Returns (key PEM, certificate PEM, certificate DER) of a fresh
    self-signed P-521 certificate for "localhost", valid for client and server
    authentication, as go-plugin makes them."""
    key = ec.generate_private_key(ec.SECP521R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dsync plugin"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA512())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


class _Health(health_pb2_grpc.HealthServicer):
    """grpc.health.v1.Health: SERVING for "" and "plugin"."""

    def Check(self, request, context):
        if request.service not in ("", "plugin"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service %r" % request.service)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """plugin.GRPCController: the host asks for a clean stop."""

    def __init__(self, stop):
        self._stop = stop

    def Shutdown(self, request, context):
        log("debug", "shutdown requested by the host")
        # Answer first; the server stops right after.
        threading.Timer(0.05, self._stop.set).start()
        return grpc_controller_pb2.Empty()


def _watch_parent(stop):
    """Ends the plugin when its host dies: the kernel's parent-death signal
    where there is one (Linux), and a poll of the parent pid everywhere."""
    ppid = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if ppid <= 1:
        return

    def poll():
        while not stop.is_set():
            if os.getppid() != ppid:
                log("error", "host process is gone; exiting")
                stop.set()
                return
            time.sleep(PARENT_POLL_SECONDS)

    threading.Thread(target=poll, name="parent-watchdog", daemon=True).start()


def serve(register, workers=16):
    """Serves the plugin until the host stops it, then returns.

    register(server) adds the plugin's services to a grpc.Server. serve
    exits the process with status 1 when it is not started by a dsync host.
    """
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write(
            "This program is a dsync plugin. It is started by dsync, not by hand:\n"
            "put it on PATH (or in --plugin-dir) and run dsync.\n"
        )
        sys.exit(1)
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(APP_PROTOCOL_VERSION))
    if str(APP_PROTOCOL_VERSION) not in [v.strip() for v in versions.split(",")]:
        log("error", "the host does not offer plugin protocol version %d (it offers %s)" % (APP_PROTOCOL_VERSION, versions))
        sys.exit(1)

    stop = threading.Event()
    # The host drives the shutdown: a Ctrl-C meant for it must not kill the
    # plugin first. SIGTERM (also the parent-death signal) stops cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    _watch_parent(stop)

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    register(server)
    health_pb2_grpc.add_HealthServicer_to_server(_Health(), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(stop), server)

    sock_dir = tempfile.mkdtemp(prefix="plugin", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    sock = os.path.join(sock_dir, "grpc.sock")
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    cert_field = ""
    if client_cert:
        key_pem, cert_pem, cert_der = make_certificate()
        creds = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=client_cert.encode(), require_client_auth=True
        )
        if server.add_secure_port("unix:" + sock, creds) == 0:
            log("error", "cannot listen on unix socket", path=sock)
            sys.exit(1)
        cert_field = base64.b64encode(cert_der).decode().rstrip("=")
    else:
        log("warn", "PLUGIN_CLIENT_CERT is not set: serving without TLS (the host must allow it with --plugin-insecure)")
        if server.add_insecure_port("unix:" + sock) == 0:
            log("error", "cannot listen on unix socket", path=sock)
            sys.exit(1)
    server.start()

    line = "%d|%d|unix|%s|grpc|%s\n" % (CORE_PROTOCOL_VERSION, APP_PROTOCOL_VERSION, sock, cert_field)
    sys.stdout.write(line)
    sys.stdout.flush()

    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop(grace=2).wait(5)
        shutil.rmtree(sock_dir, ignore_errors=True)
