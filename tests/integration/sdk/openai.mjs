// The official OpenAI TypeScript SDK, unmodified, against llm-fcgi's /v1/chat/completions. Run by
// test_api_compat.py with BASE_URL (the gateway's /v1, for baseURL), CLIENT_KEY and MODEL (an alias
// the gateway maps to a Claude model) set; prints one JSON object of observations.
import OpenAI from 'openai';

const { BASE_URL, CLIENT_KEY, MODEL } = process.env;
const client = new OpenAI({ baseURL: BASE_URL, apiKey: CLIENT_KEY });
const out = {};

function describe(e) {
  return {
    status: e.status ?? null, name: e.constructor.name, type: e.type ?? null, code: e.code ?? null,
    param: e.param ?? null, message: e.message, auth: e instanceof OpenAI.AuthenticationError,
    bad_request: e instanceof OpenAI.BadRequestError,
  };
}

async function step(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    out[name] = { ok: false, error: describe(e) };
  }
}

await step('create', async () => {
  const { data: c, response } = await client.chat.completions
    .create({
      model: MODEL,
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'red green blue [[emu:id=sdk-o-create]]' },
      ],
      max_completion_tokens: 64,
      temperature: 0.5,
    })
    .withResponse();
  return {
    object: c.object, id: c.id, model: c.model, choices: c.choices, usage: c.usage,
    request_id: response.headers.get('x-request-id'),
  };
});

await step('stream', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'north south east west [[emu:id=sdk-o-stream,words=7]]' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return { chunks };
});

await step('wrong_key', async () => {
  const bad = new OpenAI({ baseURL: BASE_URL, apiKey: 'sk-not-a-listed-key' });
  await bad.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
  return {};
});

await step('n_two', async () => {
  await client.chat.completions.create({ model: MODEL, n: 2, messages: [{ role: 'user', content: 'hi' }] });
  return {};
});

await step('stream_error', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, stream: true,
    messages: [{ role: 'user', content: 'cut me short [[emu:id=sdk-o-mid,fault=error-mid:2]]' }],
  });
  let text = '';
  try {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  } catch (e) {
    return { text, error: describe(e) };
  }
  return { text, error: null };
});

await step('models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  return { ids };
});

console.log(JSON.stringify(out));
