// The official `openai` Node SDK against a running gateway and emulator.
// Run by tests/sdk/test_openai_sdk.py, which starts both and passes their addresses:
//   SWITCHYARD_BASE (http://127.0.0.1:PORT/v1), SWITCHYARD_ADMIN (http://127.0.0.1:PORT),
//   SWITCHYARD_KEY. Prints one line per test and a closing "N passed, M failed".
import OpenAI from "openai";

const base = process.env.SWITCHYARD_BASE;
const admin = process.env.SWITCHYARD_ADMIN;
const key = process.env.SWITCHYARD_KEY;
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 30_000 });

async function faults(deployment, plan) {
  const r = await fetch(`${admin}/faults/${deployment}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(plan),
  });
  if (!r.ok) throw new Error(`admin ${deployment}: ${r.status}`);
}

async function clearFaults() {
  for (const d of ["openai-us", "vllm-eu", "openai-embed"]) await faults(d, []);
}

async function expectStatus(promise, status) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof OpenAI.APIError && e.status === status) return e;
    throw new Error(`expected ${status}, got ${e?.constructor?.name}: ${e?.status} ${e?.message}`);
  }
  throw new Error(`expected ${status}, got success`);
}

const tests = {
  // The SDK asks for base64 by default and decodes little-endian float32s.
  async default_embeddings_call_gets_the_right_vector() {
    const encoded = await client.embeddings.create({ model: "embed", input: "alpha" });
    const floats = await client.embeddings.create({ model: "embed", input: "alpha", encoding_format: "float" });
    const a = encoded.data[0].embedding;
    const b = floats.data[0].embedding;
    if (!Array.isArray(a) || a.length === 0 || a.length !== b.length) throw new Error(`lengths ${a.length} ${b.length}`);
    a.forEach((x, i) => {
      if (Math.abs(x - b[i]) > 1e-6) throw new Error(`component ${i}: ${x} vs ${b[i]}`);
    });
    const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
    if (Math.abs(norm - 1) > 1e-3) throw new Error(`norm ${norm}`);
    const small = await client.embeddings.create({ model: "embed", input: ["alpha", "beta"], dimensions: 4 });
    if (small.data.length !== 2 || small.data.some((d) => d.embedding.length !== 4)) throw new Error("dimensions");
  },

  async oversized_body_gets_413_not_a_broken_pipe() {
    const content = "x".repeat(5 * 1024 * 1024);
    for (let i = 0; i < 10; i++) {
      const e = await expectStatus(
        client.chat.completions.create({ model: "chat", messages: [{ role: "user", content }] }),
        413,
      );
      if (e.code !== "request_too_large") throw new Error(`code ${e.code}`);
    }
  },

  async wrong_key_with_a_large_body_gets_401() {
    const bad = new OpenAI({ baseURL: base, apiKey: "sk-wrong", maxRetries: 0 });
    for (const size of [3, 5]) {
      const content = "y".repeat(size * 1024 * 1024);
      for (let i = 0; i < 5; i++) {
        await expectStatus(bad.chat.completions.create({ model: "chat", messages: [{ role: "user", content }] }), 401);
      }
    }
  },

  async unknown_path_is_404() {
    // A base URL without /v1 is the commonest mistake.
    const noV1 = new OpenAI({ baseURL: base.replace(/\/v1$/, ""), apiKey: key, maxRetries: 0 });
    const e = await expectStatus(
      noV1.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }] }),
      404,
    );
    if (!(e instanceof OpenAI.NotFoundError)) throw new Error(e.constructor.name);
  },

  async responses_are_answered_plain_and_streamed_and_previous_response_id_is_400() {
    const r = await client.responses.create({ model: "chat", input: "hi" });
    if (r.object !== "response" || r.status !== "completed" || r.output[0]?.content[0]?.type !== "output_text") {
      throw new Error(JSON.stringify(r));
    }
    const stream = await client.responses.create({ model: "chat", input: "hi", stream: true });
    const types = [];
    for await (const event of stream) types.push(event.type);
    if (types[0] !== "response.created" || types.at(-1) !== "response.completed") throw new Error(types.join(","));
    const e = await expectStatus(
      client.responses.create({ model: "chat", input: "hi", previous_response_id: "resp_1" }),
      400,
    );
    if (!(e instanceof OpenAI.BadRequestError) || !/keeps no response state/.test(e.message)) throw new Error(e.message);
  },

  async last_chunk_names_the_model_that_served_after_failover() {
    try {
      await faults("openai-us", [{ kind: "outage" }]);
      const stream = await client.chat.completions.create({
        model: "chat-ordered",
        messages: [{ role: "user", content: "fail over please" }],
        stream: true,
        stream_options: { include_usage: true },
      });
      const models = [];
      let last;
      for await (const chunk of stream) {
        models.push(chunk.model);
        last = chunk;
      }
      if (!last?.usage) throw new Error("no usage chunk last");
      const served = "meta-llama/Llama-3.1-8B-Instruct";
      if (last.model !== served) throw new Error(`last chunk model ${last.model}`);
      if (models.some((m) => m !== served)) throw new Error(`models ${[...new Set(models)]}`);
    } finally {
      await clearFaults();
    }
  },
  // Last: the deployments cool down for the Retry-After it sets.
  async every_deployment_rate_limited_is_429_with_retry_after() {
    try {
      for (const d of ["openai-us", "vllm-eu"]) {
        await faults(d, [{ kind: "error", status: 429, retry_after_ms: 5000 }]);
      }
      const e = await expectStatus(
        client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "limited" }] }),
        429,
      );
      if (!(e instanceof OpenAI.RateLimitError)) throw new Error(e.constructor.name);
      const wait = Number(e.headers.get("retry-after"));
      if (!(wait >= 1 && wait <= 5)) throw new Error(`retry-after ${wait}`);
    } finally {
      await clearFaults();
    }
  },

};

let passed = 0;
let failed = 0;
for (const [name, test] of Object.entries(tests)) {
  try {
    await test();
    passed++;
    console.log(`ok   node ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL node ${name}: ${e?.stack ?? e}`);
  }
}
console.log(`node sdk: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
