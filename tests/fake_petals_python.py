#!/usr/bin/env python3
"""Stand-in for the PETALS venv's ``python`` (tests of tools/petals_swarm without PETALS).

Every long-running role spawns two children the way PETALS processes do (a server has a DHT
process, a runtime and p2pd), so a teardown that only signals the main pid leaves them
behind.  FAKE_CLIENT=ok|fail|hang picks the client's behaviour; FAKE_IGNORE_TERM=1 makes
the servers ignore SIGTERM (the teardown must escalate to SIGKILL).
"""
import json
import os
import signal
import subprocess
import sys
import time


def children(n=2):
    return [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(n)]


def main(argv):
    if argv[:2] == ["-m", "petals.cli.run_dht"]:
        kids = children()
        print("INFO Running a DHT instance. To connect other peers ...", flush=True)
        time.sleep(600)
    elif argv[:2] == ["-m", "petals.cli.run_server"]:
        if os.environ.get("FAKE_IGNORE_TERM") == "1":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kids = children()
        if "--block_indices" in argv:
            a, b = argv[argv.index("--block_indices") + 1].split(":")
        else:
            a, b = 0, argv[argv.index("--num_blocks") + 1]
        print(f"INFO Announced that blocks range({a}, {b}) are joining", flush=True)
        print("INFO Started", flush=True)
        time.sleep(600)
    elif len(argv) > 1 and argv[1] == "identity":
        for i, _ in enumerate(argv[2:]):
            print(f"QmFake{i}")
    elif len(argv) > 1 and argv[1] == "model":
        os.makedirs(argv[2], exist_ok=True)
        open(os.path.join(argv[2], "config.json"), "w").write("{}")
    elif len(argv) > 1 and argv[1] == "client":
        kids = children(1)
        mode = os.environ.get("FAKE_CLIENT", "ok")
        if mode == "fail":
            print("Traceback: something broke", flush=True)
            sys.exit(1)
        if mode == "hang":
            time.sleep(600)
        workload = json.loads(argv[argv.index("--workload") + 1])
        for i, req in enumerate(workload):
            print(json.dumps({"request": i, "input_tokens": req["input_tokens"],
                              "output_tokens": req["output_tokens"],
                              "step_ms": [50.0 + i] + [10.0] * (req["output_tokens"] - 1),
                              "chain": [["QmFake0", 0, 2], ["QmFake1", 2, 4]]}), flush=True)
        print(json.dumps({"event": "client done"}), flush=True)
        if os.environ.get("FAKE_CLIENT_LINGER") == "1":   # like hivemind's threads
            time.sleep(600)
        for k in kids:
            k.kill()
    else:
        sys.exit(f"fake python: unexpected arguments {argv}")


if __name__ == "__main__":
    main(sys.argv[1:])
