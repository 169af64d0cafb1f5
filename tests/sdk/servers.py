"""The servers the SDK checks run against: `switchyard emulate` and `switchyard serve`, started
as processes on free loopback ports with examples/quickstart.yaml (plus an alias `chat-ordered`
that always tries openai-us first, so that faults there are seen), in a temp dir that also
takes the gateway's default ledger file.
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, deadline_s=60):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


class Servers:
    """The emulator and the gateway, up once `start` returns; `stop` ends both."""

    def __init__(self, binary, prefix):
        text = open(os.path.join(ROOT, "examples", "quickstart.yaml")).read()
        text = text.replace(
            "aliases:\n",
            "aliases:\n  - name: chat-ordered\n    policy: priority\n    deployments: [openai-us, vllm-eu]\n",
            1,
        )
        ports = {old: free_port() for old in (9101, 9102, 9103, 8080)}
        for old, new in ports.items():
            text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        self.ports = list(ports.values())
        self.gateway = ports[8080]
        self.admin = free_port()
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        config = os.path.join(self.workdir, "switchyard.yaml")
        with open(config, "w") as f:
            f.write(text)
        env = dict(os.environ, SWITCHYARD_LOG="warn")
        emulate = [binary, "emulate", "--config", config, "--admin", f"127.0.0.1:{self.admin}"]
        self.procs = [
            subprocess.Popen(emulate, env=env, cwd=self.workdir),
            subprocess.Popen([binary, "serve", "--config", config], env=env, cwd=self.workdir),
        ]

    def start(self):
        for port in self.ports + [self.admin]:
            wait_for(port)
        return self

    def set_faults(self, name, plan):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}/faults/{name}", data=json.dumps(plan).encode(), method="PUT",
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=5).read()

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
