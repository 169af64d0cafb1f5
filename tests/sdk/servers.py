"""The servers the SDK checks run against: `switchyard emulate` and `switchyard serve`, started
as processes on free loopback ports with an example config (by default examples/quickstart.yaml,
plus an alias `chat-ordered` that always tries openai-us first, so that faults there are seen),
in a temp dir that also takes the gateway's default ledger file. Every `127.0.0.1:PORT` in the
config is moved to a free port; `env` adds the variables its secret references name.
"""

import json
import os
import re
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

    def __init__(self, binary, prefix, config="quickstart.yaml", env=None):
        text = open(os.path.join(ROOT, "examples", config)).read()
        if config == "quickstart.yaml":
            text = text.replace(
                "aliases:\n",
                "aliases:\n  - name: chat-ordered\n    policy: priority\n    deployments: [openai-us, vllm-eu]\n",
                1,
            )
        listen = int(re.search(r"listen: 127\.0\.0\.1:(\d+)", text).group(1))
        live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        old_ports = sorted({int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", live)})
        ports = {old: free_port() for old in old_ports}
        text = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{ports.get(int(m.group(1)), m.group(1))}", text)
        self.ports = list(ports.values())
        self.gateway = ports[listen]
        self.admin = free_port()
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        path = os.path.join(self.workdir, "switchyard.yaml")
        with open(path, "w") as f:
            f.write(text)
        env = dict(os.environ, SWITCHYARD_LOG="warn", **(env or {}))
        emulate = [binary, "emulate", "--config", path, "--admin", f"127.0.0.1:{self.admin}"]
        self.procs = [
            subprocess.Popen(emulate, env=env, cwd=self.workdir),
            subprocess.Popen([binary, "serve", "--config", path], env=env, cwd=self.workdir),
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
