"""End-to-end check of the gateway with the official `openai` Python SDK.

Starts `switchyard emulate` and `switchyard serve` on free loopback ports with
examples/quickstart.yaml (plus an alias `chat-ordered` that always tries openai-us first),
then drives the gateway through the SDK: chat, streaming, a stream continued after a cut
read with the `stream()` helper and sent back as history, embeddings, failover through an
emulated outage, and error cases. With `--node DIR` it then runs DIR/test_openai_node.mjs,
the official Node SDK's checks, against the same servers.
Usage: python test_openai_sdk.py PATH_TO_SWITCHYARD_BINARY [--node tests/sdk/node]
"""

import os
import subprocess
import sys
import traceback

import openai

from servers import Servers

KEY = "sk-local-dev"


def main():
    binary = sys.argv[1]
    node_dir = sys.argv[sys.argv.index("--node") + 1] if "--node" in sys.argv else None
    servers = Servers(binary, "switchyard-sdk-")
    passed, failed = 0, 0
    try:
        servers.start()
        base = f"http://127.0.0.1:{servers.gateway}/v1"
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
            assert ids == ["chat", "chat-ordered", "embed"], ids

        set_faults = servers.set_faults

        def test_continued_stream_with_the_stream_helper_and_back_as_history():
            set_faults("openai-us", [{"kind": "cut", "after_tokens": 3}])
            try:
                messages = [{"role": "user", "content": "Tell me a story"}]
                with client.chat.completions.stream(model="chat-ordered", messages=messages) as stream:
                    ids = {event.chunk.id for event in stream if event.type == "chunk"}
                    final = stream.get_final_completion()
                assert len(ids) == 1, ids
                message = final.choices[0].message
                assert message.role == "assistant", message.role
                assert message.content, final
                history = messages + [
                    {"role": message.role, "content": message.content},
                    {"role": "user", "content": "And then?"},
                ]
                again = client.chat.completions.create(model="chat-ordered", messages=history)
                assert again.choices[0].message.content, again
            finally:
                set_faults("openai-us", [])

        def test_failover_through_an_outage():
            set_faults("openai-us", [{"kind": "outage"}])
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

        tests = (
            test_chat,
            test_stream,
            test_continued_stream_with_the_stream_helper_and_back_as_history,
            test_embeddings,
            test_models,
            test_failover_through_an_outage,
            test_errors,
        )
        for test in tests:
            try:
                test()
                passed += 1
                print(f"ok   {test.__name__}")
            except Exception:
                failed += 1
                print(f"FAIL {test.__name__}")
                traceback.print_exc()
        set_faults("openai-us", [])
        if node_dir:
            node_env = dict(
                os.environ,
                SWITCHYARD_BASE=base,
                SWITCHYARD_ADMIN=f"http://127.0.0.1:{servers.admin}",
                SWITCHYARD_KEY=KEY,
            )
            script = os.path.join(node_dir, "test_openai_node.mjs")
            if subprocess.run(["node", script], env=node_env, timeout=600).returncode == 0:
                passed += 1
            else:
                failed += 1
                print("FAIL the Node SDK checks")
    finally:
        servers.stop()
    print(f"sdk: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
