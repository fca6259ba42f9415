// Budget and rate-limit refusals through the official SDKs, unmodified and with their default
// retries (2): run by test_spend_sdk.py with BASE_URL (the gateway) and WHO (a JSON list of the
// X-Forwarded-For addresses to call as, each naming one limit). For each address, one
// messages.create (Anthropic 1.x and 0.x) and one chat.completions.create (OpenAI), each a single
// SDK call; prints the errors they raised. The test counts the gateway's requests and the
// upstream's attempts: a refusal must cost one request, never a retry.
import OpenAI from 'openai';

const { BASE_URL, WHO } = process.env;
const out = {};

function describe(e) {
  return {
    status: e.status ?? null,
    name: e.constructor.name,
    type: e.error?.error?.type ?? e.error?.type ?? e.type ?? null,
    code: e.code ?? e.error?.code ?? null,
    message: e.message,
    retry_after: e.headers?.get?.('retry-after') ?? e.headers?.['retry-after'] ?? null,
  };
}

async function call(name, fn) {
  try {
    await fn();
    out[name] = { ok: true };
  } catch (e) {
    out[name] = { ok: false, error: describe(e) };
  }
}

for (const who of JSON.parse(WHO)) {
  const headers = { 'X-Forwarded-For': who };
  for (const pkg of ['@anthropic-ai/sdk', 'anthropic-sdk-0']) {
    const { default: Anthropic } = await import(pkg);
    const client = new Anthropic({ baseURL: BASE_URL, apiKey: 'sk-unused', defaultHeaders: headers });
    await call(`${pkg}|${who}`, () => client.messages.create({
      model: 'claude-sonnet-5-5', max_tokens: 16,
      messages: [{ role: 'user', content: `hi [[emu:id=sdk-${pkg.length}-${who}]]` }],
    }));
  }
  const openai = new OpenAI({ baseURL: `${BASE_URL}/v1`, apiKey: 'sk-unused', defaultHeaders: headers });
  await call(`openai|${who}`, () => openai.chat.completions.create({
    model: 'claude-sonnet-5-5', messages: [{ role: 'user', content: `hi [[emu:id=sdk-o-${who}]]` }],
  }));
}

console.log(JSON.stringify(out));
