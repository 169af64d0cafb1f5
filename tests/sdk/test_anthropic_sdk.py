"""End-to-end check of the gateway's Messages API with the official `anthropic` Python SDK.

Starts `switchyard emulate` and `switchyard serve` on free loopback ports with
examples/quickstart.yaml (plus an alias `chat-ordered` that always tries openai-us first), as
test_openai_sdk.py does, then drives `/v1/messages` through the SDK, unchanged: a plain
message, a system prompt and an image, streams (`messages.stream` and `stream=True`), a stream
continued after a cut, tools and a tool-result turn, the model list, and errors. Every
deployment behind it speaks OpenAI Chat: the gateway translates both ways.
Usage: python test_anthropic_sdk.py PATH_TO_SWITCHYARD_BINARY
"""

import os
import sys
import traceback

import anthropic

from servers import Servers

KEY = "sk-local-dev"
# A 1x1 PNG.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def main():
    binary = sys.argv[1]
    servers = Servers(binary, "switchyard-anthropic-sdk-")
    passed, failed = 0, 0
    try:
        servers.start()
        base = f"http://127.0.0.1:{servers.gateway}"
        client = anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0, timeout=30)

        set_faults = servers.set_faults

        def test_message():
            raw = client.messages.with_raw_response.create(
                model="chat", max_tokens=1024, messages=[{"role": "user", "content": "Say hello"}]
            )
            assert raw.headers.get("x-switchyard-deployment") in ("openai-us", "vllm-eu"), raw.headers
            message = raw.parse()
            assert message.type == "message" and message.role == "assistant", message
            assert message.model == "chat", message.model
            assert message.content[0].type == "text" and message.content[0].text, message
            assert message.stop_reason == "end_turn", message.stop_reason
            assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage

        def test_system_and_image():
            raw = client.messages.with_raw_response.create(
                model="chat",
                max_tokens=1024,
                system="Answer in one sentence.",
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                ]}],
            )
            # Only openai-us takes images.
            assert raw.headers.get("x-switchyard-deployment") == "openai-us", raw.headers
            assert raw.parse().content[0].text

        def test_stream_helper():
            with client.messages.stream(
                model="chat", max_tokens=1024, system="Be brief.", messages=[{"role": "user", "content": "Stream please"}]
            ) as stream:
                streamed = "".join(stream.text_stream)
                final = stream.get_final_message()
            assert streamed, "no streamed text"
            assert final.content[0].text == streamed, (final, streamed)
            assert final.stop_reason == "end_turn", final.stop_reason
            assert final.model == "chat", final.model
            assert final.usage.output_tokens > 0, final.usage

        def test_stream_true():
            events = list(client.messages.create(
                model="chat", max_tokens=1024, messages=[{"role": "user", "content": "Stream raw events"}], stream=True
            ))
            kinds = [e.type for e in events]
            assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
            assert kinds[-2] == "message_delta" and events[-2].delta.stop_reason == "end_turn", events[-2]
            assert events[-2].usage.output_tokens > 0, events[-2]
            text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
            assert text, kinds

        def test_continued_stream():
            set_faults("openai-us", [{"kind": "cut", "after_tokens": 3}])
            try:
                with client.messages.stream(
                    model="chat-ordered", max_tokens=1024, messages=[{"role": "user", "content": "Tell me a story"}]
                ) as stream:
                    events = list(stream)
                    final = stream.get_final_message()
                assert sum(e.type == "message_start" for e in events) == 1, [e.type for e in events]
                assert len(final.content) == 1 and final.content[0].text, final
                assert final.stop_reason == "end_turn", final
            finally:
                set_faults("openai-us", [])

        def test_tools():
            ask = [{"role": "user", "content": "What is the weather in Paris?"}]
            raw = client.messages.with_raw_response.create(
                model="chat", max_tokens=1024, tools=[WEATHER], tool_choice={"type": "auto"}, messages=ask
            )
            # Only openai-us takes tools.
            assert raw.headers.get("x-switchyard-deployment") == "openai-us", raw.headers
            called = raw.parse()
            assert called.stop_reason == "tool_use", called
            call = next(b for b in called.content if b.type == "tool_use")
            assert call.name == "get_weather" and call.input == {"city": "Paris"}, call
            # A turn with a tool call and its result goes through too; the answer is text.
            turn = ask + [
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"}]},
            ]
            answer = client.messages.create(model="chat", max_tokens=1024, tools=[WEATHER], messages=turn)
            assert answer.content[0].text and answer.stop_reason == "end_turn", answer
            with client.messages.stream(model="chat", max_tokens=1024, tools=[WEATHER], messages=turn) as stream:
                final = stream.get_final_message()
            assert final.content[0].text == answer.content[0].text, (final, answer)

        def test_models():
            ids = sorted(m.id for m in client.models.list())
            assert ids == ["chat", "chat-ordered", "embed"], ids

        def test_errors():
            try:
                client.messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
                raise AssertionError("expected NotFoundError")
            except anthropic.NotFoundError as e:
                assert e.body["error"]["type"] == "not_found_error", e.body
            bad = anthropic.Anthropic(base_url=base, api_key="sk-wrong", max_retries=0)
            try:
                bad.messages.create(model="chat", max_tokens=8, messages=[{"role": "user", "content": "x"}])
                raise AssertionError("expected AuthenticationError")
            except anthropic.AuthenticationError as e:
                assert e.body["error"]["type"] == "authentication_error", e.body
            try:
                client.messages.create(
                    model="chat", max_tokens=8, messages=[{"role": "user", "content": "x"}], extra_body={"top_k": 5}
                )
                raise AssertionError("expected BadRequestError")
            except anthropic.BadRequestError as e:
                assert "top_k" in e.body["error"]["message"], e.body

        tests = (
            test_message,
            test_system_and_image,
            test_stream_helper,
            test_stream_true,
            test_continued_stream,
            test_tools,
            test_models,
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
    finally:
        servers.stop()
    print(f"anthropic sdk: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
