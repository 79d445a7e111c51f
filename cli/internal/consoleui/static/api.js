// The console's own HTTP/JSON API (same origin). Every error is thrown as an
// APIError whose message is the server's {"error": "..."} text.

export class APIError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'APIError';
    this.status = status;
  }
}

// Token amounts are integers in base units and may exceed 2^53: keep those
// exact as BigInt (JSON.parse source text access), the rest as numbers.
const reviver = (key, value, ctx) =>
  typeof value === 'number' && !Number.isSafeInteger(value) && ctx && /^-?\d+$/.test(ctx.source)
    ? BigInt(ctx.source)
    : value;
export const parseJSON = (text) => JSON.parse(text, reviver);

async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(`The console does not answer (${e.message}). Is mu console still running?`, 0);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text.trim();
    try { const j = JSON.parse(text); if (j && j.error) msg = j.error; } catch { /* not JSON */ }
    throw new APIError(msg || `${res.status} ${res.statusText}`, res.status);
  }
  return (res.headers.get('Content-Type') || '').includes('json') ? parseJSON(text) : text;
}

const get = (p) => request('GET', p);
const post = (p, b) => request('POST', p, b);
const enc = encodeURIComponent;
// amount is a string of digits, sent as a JSON number without going through a float.
const amountBody = (amount) => `{"amount":${String(amount)}}`;

export const api = {
  session: () => get('/api/session'),
  providers: () => get('/api/providers'),
  regions: () => get('/api/regions'),
  stacks: () => get('/api/stacks'),
  stack: (id) => get(`/api/stacks/${enc(id)}`),
  usage: (id, buckets = 24, minutes = 1440) => get(`/api/stacks/${enc(id)}/usage?buckets=${buckets}&minutes=${minutes}`),
  logs: (id, tail = 50) => get(`/api/stacks/${enc(id)}/logs?tail=${tail}`),
  escrows: () => get('/api/escrows'),
  createEscrow: (provider) => post('/api/escrows', { provider }),
  recharge: (provider, amount) => post(`/api/escrows/${enc(provider)}/recharge`, amountBody(amount)),
  withdraw: (provider, amount) => post(`/api/escrows/${enc(provider)}/withdraw`, amountBody(amount)),
  provider: () => get('/api/provider'),
};
