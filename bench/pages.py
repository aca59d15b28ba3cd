# bench/pages.py: the anchor a Python user would write: a requests.Session paging
# List Call Results with starting_after until has_more is false, items decoded by
# requests' .json(). Prints the items and the best wall time of the passes.
# ENCODING: "identity" (the default) asks for uncompressed bodies, "gzip" for
# requests' usual gzip, deflate.
#   python3 bench/pages.py BASE_URL RUN_ID INCLUDE_AGENT_RESULTS PASSES [ENCODING]   (key: BLAND_API_KEY)
import os
import sys
import time

import requests

base, run_id, include, passes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
session = requests.Session()
session.headers["authorization"] = os.environ["BLAND_API_KEY"]
if (sys.argv[5] if len(sys.argv) > 5 else "identity") == "identity":
    session.headers["accept-encoding"] = "identity"


def once():
    n, cursor = 0, None
    while True:
        params = {"include_agent_results": include, "limit": 100}
        if cursor:
            params["starting_after"] = cursor
        r = session.get(f"{base}/v1/evals/runs/{run_id}/call-results", params=params)
        r.raise_for_status()
        page = r.json()["data"]
        for _ in page["data"]:
            n += 1
        if not page["has_more"]:
            return n
        cursor = page["next_cursor"]


best, n = float("inf"), 0
for _ in range(passes):
    t0 = time.perf_counter()
    n = once()
    best = min(best, time.perf_counter() - t0)
print(n, f"{best:.6f}")
