#!/usr/bin/env python3
"""The setup Atlassian documents, for comparison: a scheduled job that asks
the App logs API for a window, follows the cursors, and POSTs each page to
a collector's OTLP/HTTP receiver as OTLP/JSON (appLogs wrapped into
resourceLogs[].scopeLogs[].logRecords with a service.name resource
attribute). Written after the steps in forge-api.md; standard library only.

Usage: documented_poller.py BASE_URL APP_ID ENV_ID START_MS END_MS OTLP_URL
(credentials in FORGE_EMAIL and FORGE_API_TOKEN)."""
import base64
import datetime
import json
import os
import sys
import urllib.parse
import urllib.request


def fmt(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms % 1000):03d}Z"


def main():
    base, app, env, start, end, otlp = sys.argv[1:7]
    start, end = int(start), int(end)
    auth = base64.b64encode(f"{os.environ['FORGE_EMAIL']}:{os.environ['FORGE_API_TOKEN']}".encode()).decode()
    sent = 0
    # The API answers at most an hour per request.
    w = start
    while w < end:
        e = min(w + 3_600_000, end)
        cursor = None
        while True:
            q = {"environmentId": env, "startDate": fmt(w), "endDate": fmt(e)}
            if cursor:
                q["cursor"] = cursor
            req = urllib.request.Request(f"{base}/v1/app/logs/{app}?{urllib.parse.urlencode(q)}",
                                         headers={"Authorization": f"Basic {auth}", "Accept": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                page = json.load(r)
            body = {"resourceLogs": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "forge-app"}}]},
                "scopeLogs": [{"scope": {"name": "forge-logs-cron"}, "logRecords": page.get("appLogs", [])}],
            }]}
            post = urllib.request.Request(otlp, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(post, timeout=30) as r:
                r.read()
            sent += len(page.get("appLogs", []))
            cursor = page.get("cursor")
            if not cursor:
                break
        w = e
    print(sent)


if __name__ == "__main__":
    main()
