"""Checks a countersign-server `/metrics` text with an independent parser.

Usage: check_metrics.py EXPECTED_JSON < metrics.txt

The text is parsed with `prometheus_client.parser.text_string_to_metric_families`
(PyPI `prometheus-client`, pinned by `cargo xtask test`). EXPECTED_JSON maps a
sample, written `name` or `name{label="value",...}` (labels in any order), to
the value it must have; a sample that is absent counts as missing, not as 0.
Each check prints one line; the last line is `N passed, N failed`, and the exit
status is 1 when any check failed or the text does not parse.
"""

import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

KEY = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"\s*,?')


def key(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def parse_key(text):
    m = KEY.match(text)
    if not m:
        raise ValueError(f"bad sample key {text!r}")
    labels = dict(LABEL.findall(m.group(2) or ""))
    return key(m.group(1), labels)


def main():
    expected = json.loads(sys.argv[1])
    text = sys.stdin.read()
    samples = {}
    families = 0
    for family in text_string_to_metric_families(text):
        families += 1
        for s in family.samples:
            samples[key(s.name, s.labels)] = s.value
    print(f"parsed {families} metric families, {len(samples)} samples")
    passed = failed = 0
    for want_key, want in expected.items():
        k = parse_key(want_key)
        got = samples.get(k)
        if got is not None and float(got) == float(want):
            passed += 1
            print(f"ok   {k} = {want}")
        else:
            failed += 1
            print(f"FAIL {k}: expected {want}, got {'missing' if got is None else got}")
    if families == 0:
        failed += 1
        print("FAIL no metric family parsed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
