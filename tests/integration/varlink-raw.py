#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Raw Varlink peer for tests/integration/test-daemon.sh: what cohctl would never
send (malformed, oversized, garbage, stalled, floods), exact protocol checks,
a fake daemon for cohctl's error paths, and JSON assertions on stdin.

Every subcommand exits 0 when what it checks holds, 1 with a reason on stderr
when not. Waits have generous deadlines that only a hung daemon reaches; no
result depends on how fast the machine is.
"""

import json
import os
import random
import socket
import subprocess
import sys

DEADLINE = 30.0  # seconds; only a stuck daemon takes this long


def fail(msg):
    print(f"varlink-raw: {msg}", file=sys.stderr)
    sys.exit(1)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(path)
    return s


class Reader:
    """Splits what the peer sends into NUL-terminated messages."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def next(self):
        """The next message as bytes, or None at EOF (connection closed or reset)."""
        while b"\0" not in self.buf:
            if self.eof:
                return None
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                if self.buf:
                    fail(f"connection closed after a partial message: {self.buf[:80]!r}")
                return None
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return msg

    def reply(self):
        msg = self.next()
        if msg is None:
            fail("connection closed before a reply")
        try:
            o = json.loads(msg)
        except ValueError as e:
            fail(f"reply is not JSON ({e}): {msg[:200]!r}")
        if not isinstance(o, dict) or not isinstance(o.get("parameters", {}), dict):
            fail(f"reply is not a varlink reply: {msg[:200]!r}")
        if "error" in o and not isinstance(o["error"], str):
            fail(f"error name is not a string: {msg[:200]!r}")
        return o


def call_on(sock, reader, method, parameters=None):
    msg = {"method": method}
    if parameters is not None:
        msg["parameters"] = parameters
    sock.sendall(json.dumps(msg).encode() + b"\0")
    return reader.reply()


def expect_error(o, name, parameters=None):
    if o.get("error") != name:
        fail(f"expected error {name}, got {json.dumps(o)}")
    if parameters is not None and o.get("parameters", {}) != parameters:
        fail(f"expected parameters {parameters}, got {json.dumps(o)}")


def expect_answer(o, what):
    if "error" in o:
        fail(f"{what}: unexpected error reply {json.dumps(o)}")
    return o.get("parameters", {})


# ---------------------------------------------------------------- subcommands

def cmd_call(path, method, params="{}"):
    """One call on a fresh connection; prints the whole reply message."""
    s = connect(path)
    print(json.dumps(call_on(s, Reader(s), method, json.loads(params))))


def cmd_malformed(path):
    """Malformed messages get InvalidParameter; the same connection keeps working."""
    s = connect(path)
    r = Reader(s)
    cases = [
        (b"this is not json", "message"),
        (b"{\"method\":", "message"),
        (b"[\"io.coherentd.GetStatus\"]", "message"),
        (b"", "message"),
        (b"{}", "method"),
        (b"{\"method\":7}", "method"),
        (b"{\"method\":\"io.coherentd.GetStatus\",\"parameters\":[]}", "parameters"),
    ]
    for text, parameter in cases:
        s.sendall(text + b"\0")
        expect_error(r.reply(), "org.varlink.service.InvalidParameter", {"parameter": parameter})
    p = expect_answer(call_on(s, r, "org.varlink.service.GetInfo"), "GetInfo after malformed input")
    if "io.coherentd" not in p.get("interfaces", []):
        fail(f"GetInfo after malformed input: {p}")


def cmd_errors(path):
    """Unknown methods and interfaces, parameters where none are taken."""
    s = connect(path)
    r = Reader(s)
    expect_error(call_on(s, r, "io.coherentd.NoSuchMethod"),
                 "org.varlink.service.MethodNotFound", {"method": "io.coherentd.NoSuchMethod"})
    expect_error(call_on(s, r, "io.example.Get"),
                 "org.varlink.service.InterfaceNotFound", {"interface": "io.example"})
    expect_error(call_on(s, r, "org.varlink.service.GetInterfaceDescription", {"interface": "io.example"}),
                 "org.varlink.service.InterfaceNotFound", {"interface": "io.example"})
    o = call_on(s, r, "io.coherentd.GetStatus", {"bogus": 1})
    if o.get("error") not in ("org.varlink.service.InvalidParameter", "io.coherentd.InvalidParameter"):
        fail(f"GetStatus with an unknown parameter: {json.dumps(o)}")
    if o.get("parameters", {}).get("parameter") != "bogus":
        fail(f"GetStatus with an unknown parameter names it: {json.dumps(o)}")
    # Oneway: no reply at all; the next reply belongs to the next call.
    s.sendall(json.dumps({"method": "io.coherentd.GetStatus", "oneway": True}).encode() + b"\0")
    p = expect_answer(call_on(s, r, "org.varlink.service.GetInfo"), "GetInfo after oneway")
    if "interfaces" not in p:
        fail(f"reply after a oneway call is not GetInfo's: {p}")


def cmd_info(path, version):
    s = connect(path)
    p = expect_answer(call_on(s, Reader(s), "org.varlink.service.GetInfo"), "GetInfo")
    if sorted(p.get("interfaces", [])) != ["io.coherentd", "org.varlink.service"]:
        fail(f"GetInfo interfaces: {p}")
    if p.get("version") != version or not p.get("product") or not p.get("vendor"):
        fail(f"GetInfo vendor/product/version (want version {version}): {p}")


def cmd_idl(path, idl_file):
    """GetInterfaceDescription serves the interface file of the repository, verbatim."""
    with open(idl_file) as f:
        want = f.read()
    s = connect(path)
    r = Reader(s)
    p = expect_answer(call_on(s, r, "org.varlink.service.GetInterfaceDescription",
                              {"interface": "io.coherentd"}), "GetInterfaceDescription")
    if p.get("description") != want:
        fail(f"description differs from {idl_file}:\n{p.get('description')!r}")
    p = expect_answer(call_on(s, r, "org.varlink.service.GetInterfaceDescription",
                              {"interface": "org.varlink.service"}), "GetInterfaceDescription")
    if "interface org.varlink.service" not in p.get("description", ""):
        fail(f"org.varlink.service description: {p}")


def cmd_oversize(path):
    """More than VARLINK_MESSAGE_MAX without a NUL: the daemon hangs up, nothing is answered."""
    s = connect(path)
    blob = b"{\"method\":\"io.coherentd.GetStatus\",\"parameters\":{\"x\":\"" + b"x" * (1 << 20) + b"\"}}"
    try:
        s.sendall(blob[: (1 << 20) + 4096])  # no NUL in there
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed while we were still sending: that is the expected outcome
    r = Reader(s)
    msg = r.next()
    if msg is not None:
        fail(f"oversized message was answered: {msg[:200]!r}")


def cmd_garbage(path, seed, size):
    """Random bytes, NULs included: only varlink errors come back, then EOF after ours."""
    rnd = random.Random(int(seed))
    data = bytes(rnd.getrandbits(8) for _ in range(int(size)))
    s = connect(path)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = Reader(s)
    n = 0
    while True:
        msg = r.next()
        if msg is None:
            break
        o = json.loads(msg)
        if "error" not in o:
            fail(f"garbage got a non-error reply: {msg[:200]!r}")
        n += 1
    if n > data.count(0):
        fail(f"{n} replies to {data.count(0)} messages")
    print(f"garbage: {len(data)} bytes, {data.count(0)} NULs, {n} error replies, then EOF")


def cmd_stall(path, *command):
    """
    Hold a connection with half a message, run command (it must succeed), then
    complete the message: the daemon kept the stalled connection and answers it.
    """
    s = connect(path)
    first, second = b"{\"method\":\"org.varlink.servi", b"ce.GetInfo\"}\0"
    s.sendall(first)
    rc = subprocess.call(list(command))
    if rc != 0:
        fail(f"{' '.join(command)} exited {rc} while a client was stalled")
    s.sendall(second)
    p = expect_answer(Reader(s).reply(), "stalled GetInfo")
    if "io.coherentd" not in p.get("interfaces", []):
        fail(f"stalled GetInfo: {p}")


def cmd_flood(path, n, limit, *command):
    """
    Open n connections and keep them: the first `limit` are served, the rest are
    accepted and closed. While they are held, command runs and its exit code is
    printed; afterwards the daemon serves again.
    """
    n, limit = int(n), int(limit)
    socks = [connect(path) for _ in range(n)]
    # Connections are accepted in order: ask each, in order, and see who answers.
    answered = closed = 0
    for s in socks:
        try:
            s.sendall(json.dumps({"method": "org.varlink.service.GetInfo"}).encode() + b"\0")
        except (BrokenPipeError, ConnectionResetError):
            pass
        msg = Reader(s).next()
        if msg is None:
            closed += 1
        else:
            answered += 1
    rc = subprocess.call(list(command)) if command else 0
    for s in socks:
        s.close()
    print(f"flood: {n} connections, {answered} answered, {closed} closed; command exit {rc}")
    if answered != limit or closed != n - limit:
        fail(f"expected {limit} answered and {n - limit} closed")
    return rc


def cmd_stale(path):
    """Leave a socket file nobody listens on (a daemon that died)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


def cmd_fake_daemon(path, mode, count, error="io.coherentd.PermissionDenied"):
    """
    Serve `count` connections as a broken daemon would, then exit:
      error      answer every call with the error `error` (PermissionDenied)
      malformed  answer with parameters that miss the fields cohctl needs
      close      read the call, hang up without answering
      silent     read the call, never answer (until the client leaves)
    """
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path + ".tmp")
    ls.listen(16)
    os.rename(path + ".tmp", path)  # appears only when listening
    for _ in range(int(count)):
        c, _ = ls.accept()
        c.settimeout(DEADLINE)
        r = Reader(c)
        msg = r.next()
        if msg is None:
            c.close()
            continue
        call = json.loads(msg)
        if mode == "error":
            reply = {"error": error,
                     "parameters": {"method": call.get("method")}}
        elif mode == "malformed":
            reply = {"parameters": {"devices": "not a list", "version": 3}}
        elif mode == "close":
            c.close()
            continue
        elif mode == "silent":
            try:
                while c.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
            c.close()
            continue
        else:
            fail(f"unknown mode {mode}")
        c.sendall(json.dumps(reply).encode() + b"\0")
        c.close()
    ls.close()
    os.unlink(path)


def cmd_assert(expr):
    """Evaluate a Python expression over the JSON on stdin (bound to j)."""
    text = sys.stdin.read()
    try:
        j = json.loads(text)
    except ValueError as e:
        fail(f"not JSON ({e}): {text[:300]!r}")
    # Parenthesized so an expression may span lines.
    if not eval("(" + expr + "\n)", {"j": j}):
        fail(f"assertion failed: {expr}\n{json.dumps(j, indent=2)[:2000]}")


COMMANDS = {
    "call": cmd_call,
    "malformed": cmd_malformed,
    "errors": cmd_errors,
    "info": cmd_info,
    "idl": cmd_idl,
    "oversize": cmd_oversize,
    "garbage": cmd_garbage,
    "stall": cmd_stall,
    "flood": cmd_flood,
    "stale": cmd_stale,
    "fake-daemon": cmd_fake_daemon,
    "assert": cmd_assert,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} ARGS...")
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except socket.timeout:
        fail("timed out: the daemon did not answer")
    except OSError as e:
        fail(f"{e}")
