"""End-to-end check of the gateway's protocol translation with the official SDKs, unchanged.

Starts `switchyard emulate` and `switchyard serve` on examples/protocols.yaml (one Bedrock
deployment signed with SigV4, one Anthropic-protocol deployment, one OpenAI one, one Azure
OpenAI one with its api-key, one OCI one signed on the OpenAI-compatible endpoint and two on
OCI's native API (Llama, Cohere), one Gemini one with its API key; the emulator
checks each cloud's auth as the cloud does), then:
- the `anthropic` SDK on /v1/messages, routed to the Bedrock and to the OpenAI deployment:
  a plain message, a stream, tools and a tool-result turn, and errors;
- the `openai` SDK on /v1/chat/completions, routed to the Bedrock, the Anthropic, the Azure
  OpenAI, the OCI (OpenAI-compatible, and native in its GENERIC and COHERE formats) and the
  Gemini deployment: tools (whole and streamed) and a plain stream;
- the `openai` SDK on /v1/responses, routed to a deployment of each protocol (OCI's native one
  in both of its formats):
  `responses.create` plain and with `stream=True`, `responses.stream()`, a function call and
  its output, and `previous_response_id` refused with a 400;
- the `openai` SDK's `embeddings.create` with a list of inputs, routed to the Bedrock Titan,
  Bedrock Cohere, Gemini and OCI embeddings deployments: floats, base64 (the SDK's default, which it
  decodes) and base64 as it is, and the same vector for the same text whichever cloud made it.
Usage: python test_protocols_sdk.py PATH_TO_SWITCHYARD_BINARY
"""

import base64
import json
import os
import struct
import sys
import traceback

import anthropic
import openai

from servers import ROOT, Servers

KEY = "sk-local-dev"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "ANTHROPIC_API_KEY": "sk-ant-local",
    "AZURE_OPENAI_API_KEY": "azure-local",
    "GEMINI_API_KEY": "gemini-local",
    # A key made for tests only; the emulator checks every request's OCI signature against it.
    "OCI_PRIVATE_KEY": open(os.path.join(ROOT, "tests", "oci", "test_key.pem")).read(),
}
DEPLOYMENT = {
    "chat-bedrock": "bedrock-us",
    "chat-anthropic": "anthropic-us",
    "chat-openai": "openai-us",
    "chat-azure": "azure-us",
    "chat-oci": "oci-us",
    "chat-oci-native": "oci-native-us",
    "chat-oci-cohere": "oci-cohere-us",
    "chat-gemini": "gemini-us",
}
EMBEDDING = {
    "embed-titan": "titan-embed",
    "embed-cohere": "cohere-embed",
    "embed-gemini": "gemini-embed",
    "embed-oci": "oci-embed",
}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_FN = {
    "type": "function",
    "function": {"name": WEATHER["name"], "description": WEATHER["description"], "parameters": WEATHER["input_schema"]},
}


def anthropic_tests(client, set_faults):
    def served_by(raw, alias):
        got = raw.headers.get("x-switchyard-deployment")
        assert got == DEPLOYMENT[alias], (alias, got)

    def message(alias):
        raw = client.messages.with_raw_response.create(
            model=alias, max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}]
        )
        served_by(raw, alias)
        m = raw.parse()
        assert m.type == "message" and m.model == alias, m
        assert m.content[0].type == "text" and m.content[0].text, m
        assert m.stop_reason == "end_turn", m.stop_reason
        assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage

    def stream(alias):
        with client.messages.stream(
            model=alias, max_tokens=256, messages=[{"role": "user", "content": "Tell me a story"}]
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text and final.content[0].text == text, (text, final)
        assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0, final

    def tools(alias):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        m = client.messages.create(model=alias, max_tokens=256, tools=[WEATHER], messages=question)
        assert m.stop_reason == "tool_use", m
        call = next(b for b in m.content if b.type == "tool_use")
        assert call.name == "get_weather" and isinstance(call.input.get("city"), str), call
        turn = question + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, clear"}]},
        ]
        answer = client.messages.create(model=alias, max_tokens=256, tools=[WEATHER], messages=turn)
        assert answer.stop_reason == "end_turn" and answer.content[0].text, answer
        # Streamed, the tool call's input arrives in pieces and is whole at the end.
        with client.messages.stream(model=alias, max_tokens=256, tools=[WEATHER], messages=question) as s:
            final = s.get_final_message()
        streamed = next(b for b in final.content if b.type == "tool_use")
        assert streamed.name == "get_weather" and streamed.input == call.input, (streamed, call)

    def errors(alias):
        deployment = DEPLOYMENT[alias]
        set_faults(deployment, [{"kind": "error", "status": 429}])
        try:
            client.messages.create(model=alias, max_tokens=64, messages=[{"role": "user", "content": "x"}])
            raise AssertionError("expected RateLimitError")
        except anthropic.RateLimitError as e:
            assert e.body["type"] == "error" and e.body["error"]["type"] == "rate_limit_error", e.body
        finally:
            set_faults(deployment, [])
        try:
            client.messages.create(model="no-such-model", max_tokens=64, messages=[{"role": "user", "content": "x"}])
            raise AssertionError("expected NotFoundError")
        except anthropic.NotFoundError as e:
            assert e.body["error"]["type"] == "not_found_error", e.body

    tests = []
    for alias in ("chat-bedrock", "chat-openai"):
        for f in (message, stream, tools, errors):
            tests.append((f"anthropic {f.__name__} via {DEPLOYMENT[alias]}", lambda f=f, alias=alias: f(alias)))
    return tests


def openai_tests(client):
    def tools(alias):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        raw = client.chat.completions.with_raw_response.create(model=alias, messages=question, tools=[WEATHER_FN])
        assert raw.headers.get("x-switchyard-deployment") == DEPLOYMENT[alias], raw.headers
        done = raw.parse()
        choice = done.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather", call
        arguments = json.loads(call.function.arguments)
        assert isinstance(arguments.get("city"), str), arguments
        turn = question + [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 C, clear"},
        ]
        answer = client.chat.completions.create(model=alias, messages=turn, tools=[WEATHER_FN])
        assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content, answer
        assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0, answer.usage

    def streamed_tools(alias):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        with client.chat.completions.stream(model=alias, messages=question, tools=[WEATHER_FN]) as s:
            final = s.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments), call

    def stream(alias):
        chunks = list(
            client.chat.completions.create(
                model=alias,
                messages=[{"role": "user", "content": "Tell me a story"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text, chunks
        # Azure's prompt annotations come first in a chunk of their own, with no id and no
        # choices, as Azure sends it (the SDK reads it as Azure's own client does).
        annotations = [c for c in chunks if not c.id and getattr(c, "prompt_filter_results", None)]
        assert len(annotations) <= 1 and all(not c.choices for c in annotations), annotations
        assert len({c.id for c in chunks if c not in annotations}) == 1, "one stream id"
        if alias.startswith("azure"):
            assert annotations, "Azure's prompt annotations pass through"
        assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0, chunks[-1]
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks), chunks

    tests = []
    for alias in ("chat-bedrock", "chat-anthropic", "chat-azure", "chat-oci", "chat-oci-native", "chat-oci-cohere",
                  "chat-gemini"):
        for f in (tools, streamed_tools, stream):
            tests.append((f"openai {f.__name__} via {DEPLOYMENT[alias]}", lambda f=f, alias=alias: f(alias)))
    return tests


RESPONSES_WEATHER = {"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
                     "parameters": WEATHER["input_schema"]}


def responses_tests(client):
    def plain(alias):
        raw = client.responses.with_raw_response.create(model=alias, input="Say hello", instructions="Be brief.")
        assert raw.headers.get("x-switchyard-deployment") == DEPLOYMENT[alias], raw.headers
        r = raw.parse()
        assert r.object == "response" and r.status == "completed" and r.model == alias, r
        assert r.id.startswith("resp_") and r.output_text, r
        assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text", r.output
        assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
        assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage

    def create_stream(alias):
        events = list(client.responses.create(model=alias, input="Tell me a story", stream=True))
        types = [e.type for e in events]
        assert types[:2] == ["response.created", "response.in_progress"], types
        assert types[-1] == "response.completed", types
        assert [e.sequence_number for e in events] == list(range(len(events))), types
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = events[-1].response
        assert text and done.output_text == text, (text, done)
        assert done.usage.output_tokens > 0, done.usage
        assert len({e.response.id for e in events if hasattr(e, "response")}) == 1, "one response id"

    def stream_helper(alias):
        with client.responses.stream(model=alias, input="Tell me a story") as s:
            text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
            final = s.get_final_response()
        assert text and final.output_text == text, (text, final)
        assert final.status == "completed" and final.usage.output_tokens > 0, final

    def function_call(alias):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        r = client.responses.create(model=alias, input=question, tools=[RESPONSES_WEATHER])
        call = next(item for item in r.output if item.type == "function_call")
        assert call.name == "get_weather" and isinstance(json.loads(call.arguments).get("city"), str), call
        turn = question + [
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C, clear"},
        ]
        answer = client.responses.create(model=alias, input=turn, tools=[RESPONSES_WEATHER])
        assert answer.status == "completed" and answer.output_text, answer
        with client.responses.stream(model=alias, input=question, tools=[RESPONSES_WEATHER]) as s:
            final = s.get_final_response()
        streamed = next(item for item in final.output if item.type == "function_call")
        assert streamed.name == "get_weather" and "city" in json.loads(streamed.arguments), streamed

    def no_state(alias):
        try:
            client.responses.create(model=alias, input="hi", previous_response_id="resp_123")
        except openai.BadRequestError as e:
            assert "keeps no response state" in e.message and e.body["param"] == "previous_response_id", e.body
        else:
            raise AssertionError("previous_response_id was accepted")

    tests = []
    aliases = ("chat-bedrock", "chat-anthropic", "chat-openai", "chat-azure", "chat-oci", "chat-oci-native",
               "chat-oci-cohere", "chat-gemini")
    for alias in aliases:
        for f in (plain, create_stream, stream_helper, function_call, no_state):
            tests.append((f"responses {f.__name__} via {DEPLOYMENT[alias]}", lambda f=f, alias=alias: f(alias)))
    return tests


def embeddings_tests(client):
    # More than one call's worth on every API (Cohere takes 96 a call, Gemini 100).
    inputs = [f"document {i} about the weather in Paris" for i in range(130)]

    def floats(alias):
        raw = client.embeddings.with_raw_response.create(model=alias, input=inputs, encoding_format="float")
        assert raw.headers.get("x-switchyard-deployment") == EMBEDDING[alias], raw.headers
        r = raw.parse()
        assert r.object == "list" and [d.index for d in r.data] == list(range(len(inputs))), r.data[:2]
        assert all(isinstance(x, float) for x in r.data[0].embedding), r.data[0]
        assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens, r.usage

    def base64_encoded(alias):
        plain = client.embeddings.create(model=alias, input=inputs[:3], encoding_format="float")
        # Without encoding_format the SDK asks for base64 and decodes it.
        decoded = client.embeddings.create(model=alias, input=inputs[:3])
        raw = client.embeddings.create(model=alias, input=inputs[:3], encoding_format="base64")
        for p, d, r in zip(plain.data, decoded.data, raw.data):
            bytes_ = base64.b64decode(r.embedding)
            unpacked = list(struct.unpack(f"<{len(bytes_) // 4}f", bytes_))
            assert len(unpacked) == len(p.embedding), (len(unpacked), len(p.embedding))
            assert all(abs(a - b) < 1e-6 for a, b in zip(unpacked, p.embedding)), alias
            assert all(abs(a - b) < 1e-6 for a, b in zip(d.embedding, p.embedding)), alias

    def same_vector(alias):
        text = ["the same text, whichever cloud"]
        here = client.embeddings.create(model=alias, input=text, dimensions=1024, encoding_format="float")
        openai_ = client.embeddings.create(model="embed", input=text, dimensions=1024, encoding_format="float")
        a, b = here.data[0].embedding, openai_.data[0].embedding
        assert len(a) == len(b) == 1024 and all(abs(x - y) < 1e-6 for x, y in zip(a, b)), alias

    tests = []
    for alias in EMBEDDING:
        for f in (floats, base64_encoded, same_vector):
            tests.append((f"embeddings {f.__name__} via {EMBEDDING[alias]}", lambda f=f, alias=alias: f(alias)))
    return tests


def main():
    binary = sys.argv[1]
    servers = Servers(binary, "switchyard-protocols-sdk-", config="protocols.yaml", env=ENV)
    passed, failed = 0, 0
    try:
        servers.start()
        base = f"http://127.0.0.1:{servers.gateway}"
        claude = anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0, timeout=30)
        gpt = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=30)
        tests = anthropic_tests(claude, servers.set_faults) + openai_tests(gpt) + responses_tests(gpt)
        for name, test in tests + embeddings_tests(gpt):
            try:
                test()
                passed += 1
                print(f"ok   {name}")
            except Exception:
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
    finally:
        servers.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
