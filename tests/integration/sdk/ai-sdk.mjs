// The Vercel AI SDK (`ai`), unmodified, with its OpenAI provider in its default Responses mode
// (openai(model): /v1/responses, with store: true, so later turns name earlier items by id) and
// in chat mode (openai.chat(model): /v1/chat/completions), and its Anthropic provider
// (/v1/messages), against llm-fcgi. Run by test_clients.py with PROVIDER (openai-responses,
// openai or anthropic), BASE_URL (the gateway's root), CLIENT_KEY, MODEL and ID (a prefix for the emulator's
// statistics ids) set; prints one JSON object of observations.
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';

const { PROVIDER, BASE_URL, CLIENT_KEY, MODEL, ID } = process.env;
const openai = createOpenAI({ baseURL: BASE_URL + '/v1', apiKey: CLIENT_KEY });
const model = PROVIDER === 'openai-responses' ? openai(MODEL)
  : PROVIDER === 'openai' ? openai.chat(MODEL)
    : createAnthropic({ baseURL: BASE_URL + '/v1', apiKey: CLIENT_KEY })(MODEL);
const out = {};

async function step(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    out[name] = { ok: false, error: { name: e.constructor.name, message: String(e.message), status: e.statusCode ?? null } };
  }
}

// The client runs the tool itself; the emulator answers the results' turn with their text.
const weather = {
  get_weather: tool({
    description: 'The weather in a city',
    inputSchema: jsonSchema({
      type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false,
    }),
    execute: async ({ city }) => `sunny in ${city}`,
  }),
};

function steps(r) {
  return r.steps.map((s) => ({
    finishReason: s.finishReason, text: s.text,
    toolCalls: s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
    toolResults: s.toolResults.map((t) => ({ id: t.toolCallId, output: t.output })),
  }));
}

await step('text', async () => {
  const r = await generateText({ model, prompt: `alpha beta gamma [[emu:id=${ID}-text,words=6]]`, maxOutputTokens: 256 });
  return { text: r.text, finishReason: r.finishReason, usage: r.usage };
});

await step('stream', async () => {
  const r = streamText({ model, prompt: `one two three [[emu:id=${ID}-stream,words=9]]`, maxOutputTokens: 256 });
  const parts = [];
  for await (const t of r.textStream) parts.push(t);
  return { parts, finishReason: await r.finishReason, usage: await r.usage };
});

await step('tools', async () => {
  const r = await generateText({
    model, tools: weather, stopWhen: stepCountIs(3), maxOutputTokens: 256,
    prompt: `Paris please use get_weather [[emu:id=${ID}-tools]]`,
  });
  return { text: r.text, steps: steps(r) };
});

await step('tools_stream', async () => {
  const r = streamText({
    model, tools: weather, stopWhen: stepCountIs(3), maxOutputTokens: 256,
    prompt: `Rome please use get_weather [[emu:id=${ID}-tstream]]`,
  });
  const deltas = [];
  for await (const p of r.fullStream) if (p.type === 'tool-input-delta') deltas.push(p.delta);
  return { text: await r.text, steps: steps({ steps: await r.steps }), deltas };
});

if (PROVIDER === 'openai-responses') {
  // A conversation over three calls: a tool round trip, then a follow-up that hands the whole
  // conversation back, where the SDK names the earlier output items by id (item_reference), and
  // one that continues from the previous response's id.
  await step('multi', async () => {
    const first = await generateText({
      model, tools: weather, stopWhen: stepCountIs(3), maxOutputTokens: 256,
      prompt: `Oslo please use get_weather [[emu:id=${ID}-multi1]]`,
    });
    const messages = [{ role: 'user', content: `Oslo please use get_weather [[emu:id=${ID}-multi1]]` },
      ...first.response.messages, { role: 'user', content: `and tomorrow [[emu:id=${ID}-multi2]]` }];
    const second = await generateText({ model, messages, maxOutputTokens: 256 });
    const third = await generateText({
      model, prompt: `once more [[emu:id=${ID}-multi3]]`, maxOutputTokens: 256,
      providerOptions: { openai: { previousResponseId: second.providerMetadata.openai.responseId } },
    });
    return { steps: steps(first), second: second.text, third: third.text,
      responseIds: [first.providerMetadata.openai.responseId, second.providerMetadata.openai.responseId] };
  });
  // Reasoning asked for, on a name the SDK takes for a reasoning model (it sends reasoning.effort
  // and reasoning.summary only for those): the thinking streams as a reasoning summary.
  await step('reasoning', async () => {
    const r = streamText({
      model: openai('gpt-5'), prompt: `think first [[emu:id=${ID}-reason,words=4]]`, maxOutputTokens: 2048,
      providerOptions: { openai: { reasoningEffort: 'low', reasoningSummary: 'auto' } },
    });
    const kinds = [];
    const deltas = [];
    for await (const p of r.fullStream) {
      if (p.type.startsWith('reasoning')) kinds.push(p.type);
      if (p.type === 'reasoning-delta') deltas.push(p.text);
    }
    return { kinds, deltas, reasoningText: await r.reasoningText, text: await r.text };
  });
  await step('unknown_previous', async () => {
    const r = await generateText({
      model, prompt: 'hello', maxOutputTokens: 16,
      providerOptions: { openai: { previousResponseId: 'resp_00000000000000000000000000000000' } },
    });
    return { text: r.text };
  });
}

console.log(JSON.stringify(out));
