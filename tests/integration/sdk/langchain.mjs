// LangChain JS (@langchain/openai's ChatOpenAI on /v1/chat/completions, @langchain/anthropic's
// ChatAnthropic on /v1/messages), unmodified, against llm-fcgi. Run by test_clients.py with
// PROVIDER, BASE_URL (the gateway's root), CLIENT_KEY, MODEL and ID set; prints one JSON object.
import { ChatAnthropic } from '@langchain/anthropic';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';

const { PROVIDER, BASE_URL, CLIENT_KEY, MODEL, ID } = process.env;
const chat = PROVIDER === 'openai'
  ? new ChatOpenAI({ model: MODEL, apiKey: CLIENT_KEY, maxTokens: 256, configuration: { baseURL: BASE_URL + '/v1' } })
  : new ChatAnthropic({ model: MODEL, apiKey: CLIENT_KEY, maxTokens: 256, anthropicApiUrl: BASE_URL });
const out = {};

async function step(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    out[name] = { ok: false, error: { name: e.constructor.name, message: String(e.message), status: e.status ?? null } };
  }
}

function text(m) {
  return typeof m.content === 'string' ? m.content
    : m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
}

await step('text', async () => {
  const m = await chat.invoke(`alpha beta gamma [[emu:id=${ID}-text,words=6]]`);
  return { text: text(m), usage: m.usage_metadata ?? null };
});

await step('stream', async () => {
  const parts = [];
  for await (const c of await chat.stream(`one two three [[emu:id=${ID}-stream,words=9]]`)) {
    const t = text(c);
    if (t) parts.push(t);
  }
  return { parts };
});

// The tool round trip by hand, as LangChain's docs show it: the model asks, the client runs the
// tool and sends a ToolMessage back with the call's id.
await step('tools', async () => {
  const withTools = chat.bindTools([{
    type: 'function',
    function: {
      name: 'get_weather', description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  }]);
  const ask = new HumanMessage(`Paris please use get_weather [[emu:id=${ID}-tools]]`);
  const ai = await withTools.invoke([ask]);
  const calls = ai.tool_calls.map((c) => ({ id: c.id, name: c.name, args: c.args }));
  const results = ai.tool_calls.map((c) => new ToolMessage({ content: `sunny in ${c.args.city}`, tool_call_id: c.id }));
  const answer = await withTools.invoke([ask, ai, ...results]);
  return { calls, answer: text(answer) };
});

console.log(JSON.stringify(out));
