#!/usr/bin/env python3
"""The property-based API test (issue 12), run by `cargo xtask test`.

Starts `countersign server --demo` on a free loopback port with a throwaway
SQLite database, then lets schemathesis generate requests from the server's own
/openapi.json for every operation of the relying-party and device APIs
(positive and negative data, a bounded number of examples each) and check what
comes back: no server error, only documented status codes, JSON where JSON is
documented, bodies that fit the response schemas, and schema-violating input
refused. Ends with `N passed, N failed`.

Environment: COUNTERSIGN_BIN (the countersign binary), SCHEMATHESIS (its
CLI), ARTIFACTS (where the JUnit report goes); optional COUNTERSIGN_API_SEED
and COUNTERSIGN_API_EXAMPLES.
"""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
])


def need(name):
    value = os.environ.get(name)
    if not value:
        print(f"FAIL: {name} is not set (run this through `cargo xtask test`)")
        print("0 passed, 1 failed")
        sys.exit(2)
    return value


def start_server(binary, workdir):
    """Starts the demo server; returns (process, base URL, API key)."""
    db = f"sqlite://{os.path.join(workdir, 'server.db')}"
    proc = subprocess.Popen(
        [binary, "server", "--demo", "--listen", "127.0.0.1:0", "--database-url", db],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    found = {}

    def read():
        for line in proc.stdout:
            m = re.search(r"listening on (http://[0-9.:]+)", line)
            if m:
                found["url"] = m.group(1)
            m = re.search(r"(csk_[A-Za-z0-9_.-]+)", line)
            if m:
                found["key"] = m.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 30
    while time.time() < deadline and not ("url" in found and "key" in found):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        time.sleep(0.05)
    if "url" not in found or "key" not in found:
        proc.kill()
        raise RuntimeError("the server did not print its URL and API key within 30 s")
    return proc, found["url"], found["key"]


def main():
    binary = need("COUNTERSIGN_BIN")
    schemathesis = need("SCHEMATHESIS")
    artifacts = need("ARTIFACTS")
    seed = os.environ.get("COUNTERSIGN_API_SEED", "20261202")
    examples = os.environ.get("COUNTERSIGN_API_EXAMPLES", "30")
    os.makedirs(artifacts, exist_ok=True)
    report = os.path.join(artifacts, "schemathesis-junit.xml")
    with tempfile.TemporaryDirectory(prefix="countersign-api-") as work:
        proc, url, key = start_server(binary, work)
        try:
            print(f"server {url}; seed {seed}; at most {examples} examples per operation", flush=True)
            cmd = [
                schemathesis, "run", f"{url}/openapi.json",
                "--header", f"Authorization: Bearer {key}",
                "--checks", CHECKS,
                "--max-examples", examples,
                "--seed", seed,
                "--no-color",
                "--report", "junit", "--report-junit-path", report,
            ]
            # The API key never reaches the log: schemathesis filters the header.
            result = subprocess.run(cmd, cwd=work)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    try:
        suite = ET.parse(report).getroot()
        cases = suite.iter("testcase")
        passed = failed = 0
        for case in cases:
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAIL: {case.get('name')}")
            else:
                passed += 1
    except (OSError, ET.ParseError) as e:
        print(f"FAIL: no JUnit report from schemathesis ({e})")
        passed, failed = 0, 1
    if result.returncode != 0 and failed == 0:
        print(f"FAIL: schemathesis exited with {result.returncode}")
        failed = 1
    if passed == 0 and failed == 0:
        print("FAIL: schemathesis tested no operation")
        failed = 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
