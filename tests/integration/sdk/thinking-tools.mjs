// The official OpenAI TypeScript SDK, unmodified: a tool round trip on a model that always thinks
// (test_defaults.py). The SDK drops the thinking blocks, as every Chat Completions client does;
// the gateway keeps them and puts them back. BASE_URL (the gateway's /v1), CLIENT_KEY, MODEL and
// STREAM ("1": the first call streams) set; prints one JSON object of observations.
import OpenAI from 'openai';

const { BASE_URL, CLIENT_KEY, MODEL, STREAM } = process.env;
const client = new OpenAI({ baseURL: BASE_URL, apiKey: CLIENT_KEY, maxRetries: 0 });
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const messages = [{ role: 'user', content: 'Call get_weather for Paris' }];
const out = {};

try {
  let message;
  if (STREAM === '1') {
    const stream = client.chat.completions.stream({ model: MODEL, tools, messages, max_completion_tokens: 4096 });
    message = (await stream.finalChatCompletion()).choices[0].message;
  } else {
    message = (await client.chat.completions.create({ model: MODEL, tools, messages, max_completion_tokens: 4096 }))
      .choices[0].message;
  }
  out.calls = (message.tool_calls ?? []).map((c) => c.id);
  messages.push(message);
  for (const c of message.tool_calls ?? [])
    messages.push({ role: 'tool', tool_call_id: c.id, content: 'Sunny and mild' });
  const r = await client.chat.completions.create({ model: MODEL, tools, messages, max_completion_tokens: 4096 });
  out.answer = r.choices[0].message.content;
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.error = { status: e.status ?? null, code: e.code ?? null, message: e.message };
}
console.log(JSON.stringify(out));
