// The official Anthropic TypeScript SDK, unmodified, against llm-fcgi. Run by
// test_api_compat.py with SDK (the package: "@anthropic-ai/sdk" for 1.x, "anthropic-sdk-0" for the
// last 0.x), BASE_URL (the gateway, for baseURL), CLIENT_KEY, MODEL and ID (a prefix for the
// emulator's statistics ids) set; prints one JSON object of observations, which the Python test
// judges together with the emulator's statistics. Each SDK sends its own anthropic-version.
const { SDK, BASE_URL, CLIENT_KEY, MODEL, ID } = process.env;
const { default: Anthropic } = await import(SDK);
const client = new Anthropic({ baseURL: BASE_URL, apiKey: CLIENT_KEY });
const user = (text) => [{ role: 'user', content: text }];
const out = {};

function describe(e) {
  return {
    status: e.status ?? null,
    name: e.constructor.name,
    type: e.error?.error?.type ?? e.type ?? null,
    message: e.message,
    requestID: e.requestID ?? null,
    auth: e instanceof Anthropic.AuthenticationError,
    overloaded: e instanceof Anthropic.InternalServerError && e.status === 529,
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
  const { data: m, response } = await client.messages
    .create({ model: MODEL, max_tokens: 64, messages: user(`alpha beta gamma [[emu:id=${ID}-create]]`) })
    .withResponse();
  return {
    text: m.content.map((b) => (b.type === 'text' ? b.text : '')).join(''),
    stop_reason: m.stop_reason, usage: m.usage, model: m.model,
    request_id: response.headers.get('request-id'),
  };
});

await step('stream', async () => {
  const s = client.messages.stream({
    model: MODEL, max_tokens: 64, messages: user(`one two three four five [[emu:id=${ID}-stream,words=9]]`),
  });
  let text = '';
  let events = 0;
  s.on('text', (t) => { text += t; });
  s.on('streamEvent', () => { events += 1; });
  const m = await s.finalMessage();
  return {
    text, events, final_text: m.content.map((b) => (b.type === 'text' ? b.text : '')).join(''),
    stop_reason: m.stop_reason, usage: m.usage,
  };
});

await step('wrong_key', async () => {
  const bad = new Anthropic({ baseURL: BASE_URL, apiKey: 'sk-not-a-listed-key' });
  await bad.messages.create({ model: MODEL, max_tokens: 8, messages: user(`hi [[emu:id=${ID}-wrong]]`) });
  return {};
});

await step('overloaded', async () => {
  await client.messages.create({
    model: MODEL, max_tokens: 8,
    messages: user(`hi [[emu:id=${ID}-529,fault=529,times=100,retry_after=0.1]]`),
  });
  return {};
});

await step('stream_error', async () => {
  const s = client.messages.stream({
    model: MODEL, max_tokens: 64, messages: user(`cut me short [[emu:id=${ID}-mid,fault=error-mid:2]]`),
  });
  let text = '';
  s.on('text', (t) => { text += t; });
  try {
    await s.finalMessage();
  } catch (e) {
    return { text, error: describe(e) };
  }
  return { text, error: null };
});

// A version the API does not know is passed through as it is, and the upstream's 400 comes back.
await step('unknown_version', async () => {
  const odd = new Anthropic({ baseURL: BASE_URL, apiKey: CLIENT_KEY,
                              defaultHeaders: { 'anthropic-version': '2099-01-01' } });
  await odd.messages.create({ model: MODEL, max_tokens: 8, messages: user(`hi [[emu:id=${ID}-version]]`) });
  return {};
});

await step('count_tokens', async () => {
  const r = await client.messages.countTokens({ model: MODEL, messages: user('one two three') });
  return { input_tokens: r.input_tokens };
});

await step('models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  return { ids };
});

console.log(JSON.stringify(out));
