"""End-to-end check of the gateway with the official `openai` Python SDK.

Starts `switchyard emulate` and `switchyard serve` on free loopback ports with
examples/quickstart.yaml, then drives the gateway through the SDK: chat, streaming,
embeddings, failover through an emulated outage, and error cases.
Usage: python test_openai_sdk.py PATH_TO_SWITCHYARD_BINARY
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = "sk-local-dev"


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


def main():
    binary = sys.argv[1]
    text = open(os.path.join(ROOT, "examples", "quickstart.yaml")).read()
    ports = {old: free_port() for old in (9101, 9102, 9103, 8080)}
    for old, new in ports.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    admin = free_port()
    workdir = tempfile.mkdtemp(prefix="switchyard-sdk-")
    config = os.path.join(workdir, "switchyard.yaml")
    with open(config, "w") as f:
        f.write(text)
    env = dict(os.environ, SWITCHYARD_LOG="warn")
    procs = [
        subprocess.Popen([binary, "emulate", "--config", config, "--admin", f"127.0.0.1:{admin}"], env=env),
        subprocess.Popen([binary, "serve", "--config", config], env=env),
    ]
    passed, failed = 0, 0
    try:
        for port in list(ports.values()) + [admin]:
            wait_for(port)
        base = f"http://127.0.0.1:{ports[8080]}/v1"
        client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=30)

        def test_chat():
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "Say hello"}], max_tokens=32
            )
            assert raw.headers.get("x-switchyard-deployment") in ("openai-us", "vllm-eu"), raw.headers
            reply = raw.parse()
            assert reply.choices[0].message.content, reply
            assert reply.usage.completion_tokens > 0, reply.usage
            assert reply.model in ("gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct"), reply.model

        def test_stream():
            stream = client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "Stream please"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            content, usage = "", None
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    content += chunk.choices[0].delta.content
                if chunk.usage is not None:
                    usage = chunk.usage
            assert content, "no streamed content"
            assert usage is not None and usage.completion_tokens > 0, usage

        def test_embeddings():
            result = client.embeddings.create(model="embed", input=["alpha", "beta"])
            assert len(result.data) == 2 and len(result.data[0].embedding) > 0, result

        def test_models():
            ids = sorted(m.id for m in client.models.list())
            assert ids == ["chat", "embed"], ids

        def test_failover_through_an_outage():
            faults = json.dumps([{"kind": "outage"}]).encode()
            for name in ("openai-us",):
                req = urllib.request.Request(
                    f"http://127.0.0.1:{admin}/faults/{name}", data=faults, method="PUT",
                    headers={"content-type": "application/json"},
                )
                urllib.request.urlopen(req, timeout=5).read()
            for i in range(6):
                raw = client.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": f"outage {i}"}]
                )
                assert raw.headers.get("x-switchyard-deployment") == "vllm-eu", raw.headers
                assert raw.parse().choices[0].message.content

        def test_errors():
            try:
                client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
                raise AssertionError("expected NotFoundError")
            except openai.NotFoundError as e:
                assert e.body["code"] == "model_not_found", e.body
            bad = openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0)
            try:
                bad.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
                raise AssertionError("expected AuthenticationError")
            except openai.AuthenticationError as e:
                assert e.body["code"] == "invalid_api_key", e.body
            try:
                client.chat.completions.create(model="chat", messages=[])
                raise AssertionError("expected BadRequestError")
            except openai.BadRequestError as e:
                assert "at least one message" in e.body["message"], e.body

        for test in (test_chat, test_stream, test_embeddings, test_models, test_failover_through_an_outage, test_errors):
            try:
                test()
                passed += 1
                print(f"ok   {test.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}")
                traceback.print_exc()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"sdk: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
