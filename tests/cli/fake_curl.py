"""A stand-in for the few ``curl`` options the README uses, so its examples run as written
(by bash, with their variables and ``$(...)``) against a test server, and every answer is
recorded for the test to judge.

Environment: ``README_BASE_URL`` replaces ``http://127.0.0.1:8080``; ``README_CURL_LOG``
gets one JSON line per request.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    method, headers, data, url = None, {}, None, None
    args = iter(argv)
    for a in args:
        if a in ("-s", "--silent"):
            continue
        if a in ("-X", "--request"):
            method = next(args)
        elif a in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif a in ("-d", "--data", "--data-binary"):
            data = next(args)
        elif a.startswith("-"):
            print(f"fake curl: option {a} is not supported", file=sys.stderr)
            return 2
        else:
            url = a
    if url is None:
        print("fake curl: no URL", file=sys.stderr)
        return 2
    if data is not None and not any(h.lower() == "content-type" for h in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    real = url.replace("http://127.0.0.1:8080", os.environ["README_BASE_URL"])
    # urllib, not httpx: this runs once per example, and it starts faster.
    req = urllib.request.Request(real, data=None if data is None else data.encode(),
                                 headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    with open(os.environ["README_CURL_LOG"], "a") as log:
        log.write(json.dumps({"url": url, "status": status, "body": text}) + "\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
