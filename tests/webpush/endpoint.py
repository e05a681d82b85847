"""A Web Push endpoint (a push service plus user agent in one) on loopback
HTTPS, checking the server's real messages with independent implementations:
`http_ece` decrypts (RFC 8291 / RFC 8188 aes128gcm) with the subscription's
private key and auth secret, `py_vapid` verifies the VAPID JWT's ES256
signature against the `k=` key (RFC 8292).

Run by tests/e2e/tests/webpush.rs with the venv python that `cargo xtask test`
installs (pinned http-ece, py-vapid, cryptography). Usage:

    endpoint.py DIR

It writes into DIR a test CA (ca.pem), two VAPID keys (vapid.pem, the current
one, and vapid-old.pem, an earlier one), then prints one JSON line with the
port, the files, the VAPID public keys and the subscription's p256dh and auth.
Then, for each request, one JSON line: path, status answered, the checks that
failed (`errors`, empty when all passed), the decrypted wake-up, the JWT
claims and the `k=` key. What it answers depends on the path:

    /push/ok/...       201 (checked and decrypted)
    /push/gone/...     410 Gone (an unsubscribed endpoint)
    /push/old-key/...  a subscription made with vapid-old.pem: 403 for any
                       other key (RFC 8292 §4.2), else 201 as /push/ok
    /push/slow/S/...   201 after S seconds (a slow push service)

It runs until stdin closes or it is killed.
"""

import base64
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import sys
import threading
import time

import http_ece
import py_vapid
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

UNCOMPRESSED = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
PKCS8 = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_certs(folder):
    """A test CA and a leaf for 127.0.0.1 (rustls refuses a CA as end entity)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "countersign webpush test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write(os.path.join(folder, "ca.pem"), ca.public_bytes(pem))
    write(os.path.join(folder, "leaf.pem"), leaf.public_bytes(pem))
    write(os.path.join(folder, "leaf.key"), leaf_key.private_bytes(*PKCS8))


def make_vapid_key(path):
    key = ec.generate_private_key(ec.SECP256R1())
    write(path, key.private_bytes(*PKCS8))
    return b64u(key.public_key().public_bytes(*UNCOMPRESSED))


def parse_authorization(value):
    """`vapid t=<jwt>, k=<key>` (RFC 8292 §3: auth-params, optional whitespace)."""
    scheme, _, params = value.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("scheme is not vapid: " + scheme)
    out = {}
    for part in params.split(","):
        name, eq, val = part.strip().partition("=")
        if not eq:
            raise ValueError("bad auth-param " + part)
        out[name.strip().lower()] = val.strip()
    if set(out) != {"t", "k"}:
        raise ValueError("auth-params are not t and k: %s" % sorted(out))
    return out["t"], out["k"]


class State:
    def __init__(self, folder):
        self.folder = folder
        self.ua_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.vapid_public = make_vapid_key(os.path.join(folder, "vapid.pem"))
        self.vapid_old_public = make_vapid_key(os.path.join(folder, "vapid-old.pem"))
        self.port = 0
        self.salts = set()
        self.sender_keys = set()
        self.lock = threading.Lock()


def check(state, path, headers, body):
    """Every check of one request; returns (errors, wake-up, claims, k)."""
    errors = []
    wake = claims = k = None

    def expect(cond, what):
        if not cond:
            errors.append(what)

    expect(headers.get("content-encoding") == "aes128gcm", "Content-Encoding is not aes128gcm")
    expect(
        headers.get("content-type") == "application/octet-stream",
        "Content-Type is not application/octet-stream",
    )
    expect(headers.get("urgency") == "high", "Urgency is not high")
    ttl = headers.get("ttl", "")
    expect(ttl.isdigit() and 0 < int(ttl) <= 600, "TTL is not in 1..=600: %r" % ttl)

    # VAPID: the ES256 signature against k= (py_vapid), then the claims.
    try:
        token, k = parse_authorization(headers.get("authorization", ""))
        ok = py_vapid.Vapid02.verify("vapid t=%s,k=%s" % (token, k))
        expect(ok, "VAPID signature does not verify against k=")
        head_b64, claims_b64, _ = token.split(".")
        head = json.loads(unb64u(head_b64))
        claims = json.loads(unb64u(claims_b64))
        expect(head.get("alg") == "ES256", "JWT alg is not ES256")
        expect(head.get("typ") == "JWT", "JWT typ is not JWT")
        expect(claims.get("aud") == "https://127.0.0.1:%d" % state.port, "aud: %r" % claims.get("aud"))
        exp = claims.get("exp")
        now = time.time()
        expect(isinstance(exp, int) and now < exp <= now + 86400, "exp not within 24 h: %r" % exp)
        expect(py_vapid._check_sub(claims.get("sub", "")), "sub is no mailto:/https: URI")
        expect(set(claims) == {"aud", "exp", "sub"}, "claims: %s" % sorted(claims))
    except Exception as e:  # noqa: BLE001 - every failure is a reported check
        errors.append("VAPID: %s" % e)

    # RFC 8188 header: salt, rs = 4096, idlen = 65, a fresh key and salt.
    try:
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender_key = body[21 : 21 + idlen]
        expect(rs == 4096, "record size %d" % rs)
        expect(idlen == 65 and sender_key[:1] == b"\x04", "key id is no uncompressed point")
        with state.lock:
            expect(salt not in state.salts, "salt reused")
            expect(sender_key not in state.sender_keys, "ephemeral key reused")
            state.salts.add(salt)
            state.sender_keys.add(sender_key)
        plain = http_ece.decrypt(
            body, private_key=state.ua_key, auth_secret=state.auth, version="aes128gcm"
        )
        wake = json.loads(plain)
        expect(
            isinstance(wake, dict)
            and set(wake) == {"device_id", "tx_id"}
            and all(isinstance(v, str) for v in wake.values()),
            "plaintext is not exactly {device_id, tx_id}: %r" % plain,
        )
    except Exception as e:  # noqa: BLE001
        errors.append("decrypt: %s" % e)
    return errors, wake, claims, k


def handler_for(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            errors, wake, claims, k = check(state, self.path, headers, body)
            if self.path.startswith("/push/slow/"):
                # /push/slow/<seconds>/...: a slow push service.
                time.sleep(float(self.path.split("/")[3]))
            if self.path.startswith("/push/gone/"):
                status = 410
            elif self.path.startswith("/push/old-key/") and k != state.vapid_old_public:
                status = 403
            elif self.path.startswith(("/push/ok/", "/push/old-key/", "/push/slow/")):
                status = 201
            else:
                status = 404
            self.answer(status)
            line = {
                "path": self.path,
                "status": status,
                "errors": errors,
                "wake": wake,
                "claims": claims,
                "k": k,
                "ttl": headers.get("ttl"),
                "body_len": len(body),
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

        def do_GET(self):
            self.answer(405)

    return Handler


def main():
    folder = sys.argv[1]
    state = State(folder)
    make_certs(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(folder, "leaf.pem"), os.path.join(folder, "leaf.key"))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    ua_public = state.ua_key.public_key().public_bytes(*UNCOMPRESSED)
    hello = {
        "port": state.port,
        "ca_file": os.path.join(folder, "ca.pem"),
        "vapid_key_file": os.path.join(folder, "vapid.pem"),
        "vapid_old_key_file": os.path.join(folder, "vapid-old.pem"),
        "vapid_public": state.vapid_public,
        "vapid_old_public": state.vapid_old_public,
        "p256dh": b64u(ua_public),
        "auth": b64u(state.auth),
    }
    sys.stdout.write(json.dumps(hello) + "\n")
    sys.stdout.flush()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Ends when the test closes stdin (or kills the process).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
