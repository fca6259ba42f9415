// GET /v1/models/{id} through both official SDKs' models.retrieve, unmodified. Run by
// test_clients.py with BASE_URL, CLIENT_KEY and IDS (space-separated names to ask for).
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const { BASE_URL, CLIENT_KEY, IDS } = process.env;
const anthropic = new Anthropic({ baseURL: BASE_URL, apiKey: CLIENT_KEY });
const openai = new OpenAI({ baseURL: BASE_URL + '/v1', apiKey: CLIENT_KEY });
const out = {};

async function get(fn) {
  try {
    const m = await fn();
    return { ok: true, model: m };
  } catch (e) {
    return { ok: false, status: e.status ?? null, name: e.constructor.name };
  }
}

for (const id of IDS.split(' ')) {
  out[id] = {
    anthropic: await get(() => anthropic.models.retrieve(id)),
    openai: await get(() => openai.models.retrieve(id)),
  };
}
console.log(JSON.stringify(out));
