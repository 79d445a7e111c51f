// mu console: one page, hash routes, live updates from /api/events.

import { api, parseJSON } from './api.js';
import { chart } from './charts.js';
import { h, add, fill, uid, int, dec, bytes, time, dateTime, shortId, stackState, badge, tableWrap } from './dom.js';

const RATE_KEYS = ['function', 'db_reads', 'db_writes', 'db_stored', 'gateway_requests', 'gateway_traffic', 'storage_stored', 'storage_traffic'];
const RATE_LABELS = {
  function: 'Function', db_reads: 'DB reads', db_writes: 'DB writes', db_stored: 'DB stored',
  gateway_requests: 'Requests', gateway_traffic: 'Gateway traffic', storage_stored: 'Storage stored', storage_traffic: 'Storage traffic',
};
const RATE_UNITS = {
  function: '1T MB-instructions', db_reads: '1M reads', db_writes: '1M writes', db_stored: 'GiB-month',
  gateway_requests: '1M requests', gateway_traffic: 'GiB', storage_stored: 'GiB-month', storage_traffic: 'GiB',
};
// The metered units of usage buckets, totals and settlements.
const METRICS = [
  { key: 'requests', label: 'Requests', fmt: int },
  { key: 'traffic_bytes', label: 'Traffic', fmt: bytes, binary: true },
  { key: 'mb_instructions', label: 'MB-instructions', fmt: int },
  { key: 'db_reads', label: 'DB reads', fmt: int },
  { key: 'db_writes', label: 'DB writes', fmt: int },
  { key: 'storage_bytes', label: 'Storage traffic', fmt: bytes, binary: true },
];
// Billing keeps usage by the hour: 24 hourly buckets.
const USAGE_BUCKETS = 24, USAGE_MINUTES = 24 * 60, LOG_TAIL = 50;

const main = document.getElementById('main');
const announcer = document.getElementById('announce');
const store = { session: null, stacks: new Map(), escrows: new Map(), regions: null, providers: null };
let view = { name: '', args: [], token: 0 };

/** announce tells screen readers about a change that happened without focus moving. */
function announce(text) {
  announcer.textContent = '';
  setTimeout(() => { announcer.textContent = text; }, 50);
}

const heading = (text, ...rest) => h('h1', { tabindex: '-1' }, text, ...rest);
const section = (title, ...kids) => {
  const id = uid('sec');
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...kids);
};
const dl = (pairs) => h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v, key]) =>
  h('div', key ? { 'data-k': key } : null, h('dt', null, k), h('dd', null, v))));
const errorBox = (e) => h('p', { class: 'error', role: 'alert' }, e.message || String(e));

async function cached(key, load) {
  if (store[key]) return store[key];
  try { store[key] = await load(); } catch { return []; }
  return store[key];
}
const regionName = (id) => {
  const r = (store.regions || []).find((x) => x.id === id);
  return r ? `${r.provider_name || shortId(r.provider)} / ${r.name}` : shortId(id);
};

// ---------- Router ----------

const ROUTES = [
  [/^#\/market$/, 'market', viewMarket],
  [/^#\/stacks$/, 'stacks', viewStacks],
  [/^#\/stacks\/([^/]+)(\/logs)?$/, 'stack', viewStack],
  [/^#\/escrow$/, 'escrow', viewEscrow],
  [/^#\/provider$/, 'provider', viewProvider],
];
const NAV_OF = { stack: 'stacks' };

async function route(first) {
  const hash = location.hash || '#/market';
  if (!hash.startsWith('#/')) return; // an in-page anchor such as the skip link
  let match = null, r = null;
  for (const x of ROUTES) if ((match = x[0].exec(hash))) { r = x; break; }
  if (!r) { location.replace('#/market'); return; }
  const token = ++view.token;
  view = { name: r[1], args: match.slice(1).map((a) => a && decodeURIComponent(a)), token };
  const nav = NAV_OF[view.name] || view.name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === `#/${nav}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.setAttribute('aria-busy', 'true');
  let node, after;
  try {
    [node, after] = [].concat(await r[2](...view.args));
  } catch (e) {
    node = h('div', null, heading('Something went wrong'), errorBox(e),
      h('p', null, h('button', { type: 'button', onclick: () => route() }, 'Try again')));
  }
  if (token !== view.token) return; // the person moved on meanwhile
  main.replaceChildren(node);
  main.removeAttribute('aria-busy');
  main.dataset.view = view.name;
  const h1 = main.querySelector('h1');
  document.title = `${h1 ? h1.textContent : 'mu'} · mu console`;
  if (after) after(first);
  else if (!first && h1) h1.focus();
}

// ---------- Market ----------

async function viewMarket() {
  const [regions, providers] = await Promise.all([api.regions(), api.providers().catch(() => [])]);
  store.regions = regions;
  store.providers = providers;
  const byId = new Map(providers.map((p) => [p.id, p]));
  const units = { ...RATE_UNITS, ...(regions.find((r) => r.rate_units) || {}).rate_units };
  const sample = (regions.find((r) => r.sample) || {}).sample || 'a sample workload';
  const cols = [
    { key: 'provider', label: 'Provider', text: true, get: (r) => r.provider_name || byId.get(r.provider)?.name || r.provider,
      cell: (r) => {
        const p = byId.get(r.provider);
        return [h('span', { title: r.provider }, r.provider_name || p?.name || shortId(r.provider)),
          p && p.authorized === false ? [' ', h('span', { class: 'badge paused', title: 'The marketplace authority has not authorized this provider yet' }, 'unauthorized')] : null];
      } },
    { key: 'region', label: 'Region', text: true, get: (r) => r.name,
      cell: (r) => h('span', { title: `${r.base_url || ''} (region ${r.number ?? '?'}, ${r.id})` }, r.name) },
    { key: 'min_escrow', label: 'Min escrow', get: (r) => r.min_escrow, cell: (r) => int(r.min_escrow) },
    ...RATE_KEYS.map((k) => ({ key: k, label: RATE_LABELS[k], unit: `per ${units[k]}`, get: (r) => r.rates?.[k], cell: (r) => int(r.rates?.[k]) })),
    { key: 'sample_cost', label: 'Sample cost', unit: sample, get: (r) => parseFloat(r.sample_cost), cell: (r) => dec(r.sample_cost) },
  ];
  const node = h('div', null,
    heading('Market'),
    h('p', { class: 'lead' }, 'Every region on the marketplace with its provider\'s prices, in token base units per the quantity under each column. ',
      `Sample cost: what ${sample} cost there. Sort by a column with its header.`));
  if (!regions.length) {
    node.append(h('p', { class: 'empty' }, 'No regions on the marketplace yet.'));
    return node;
  }
  node.append(sortableTable({ id: 'market', caption: 'Regions and prices', cols, rows: regions, rowKey: (r) => r.id }));
  return node;
}

function sortableTable({ id, caption, cols, rows, rowKey }) {
  let sort = { key: null, dir: 1 };
  const tbody = h('tbody');
  const ths = cols.map((c) => {
    const btn = h('button', { type: 'button', class: 'sort', 'data-sort': c.key },
      h('span', null, c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' })), c.unit ? h('span', { class: 'unit' }, c.unit) : null);
    const th = h('th', { scope: 'col', class: c.text ? '' : 'num' }, btn);
    btn.addEventListener('click', () => {
      sort = sort.key === c.key ? { key: c.key, dir: -sort.dir } : { key: c.key, dir: 1 };
      render();
    });
    return th;
  });
  const cmp = (a, b) => {
    const bad = (v) => v == null || (typeof v === 'number' && Number.isNaN(v));
    if (bad(a) || bad(b)) return bad(a) - bad(b);
    if (typeof a === 'string' || typeof b === 'string') return String(a).localeCompare(String(b), undefined, { numeric: true });
    return a < b ? -1 : a > b ? 1 : 0;
  };
  function render() {
    let list = rows;
    if (sort.key) {
      const c = cols.find((x) => x.key === sort.key);
      list = rows.map((r, i) => [r, i]).sort(([a, i], [b, j]) => {
        const x = cmp(c.get(a), c.get(b));
        const bad = (v) => v == null || Number.isNaN(v);
        // missing values stay last whatever the direction
        if (bad(c.get(a)) || bad(c.get(b))) return x || i - j;
        return x * sort.dir || i - j;
      }).map(([r]) => r);
    }
    cols.forEach((c, i) => {
      const th = ths[i];
      if (c.key === sort.key) th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
      th.querySelector('.arrow').textContent = c.key === sort.key ? (sort.dir > 0 ? ' ▲' : ' ▼') : '';
    });
    fill(tbody, list.map((r) => h('tr', { 'data-key': rowKey(r) },
      cols.map((c, i) => h(i === 1 ? 'th' : 'td', { class: c.text ? '' : 'num', scope: i === 1 ? 'row' : null }, c.cell(r))))));
  }
  render();
  const table = h('table', { id, class: 'data' }, h('caption', null, caption, h('span', { class: 'vh' }, ', sortable by column header buttons')),
    h('thead', null, h('tr', null, ths)), tbody);
  return tableWrap(table, caption);
}

// ---------- Stacks ----------

// urlList shows a stack's endpoint URLs ("GET http://..."); with id, the
// stack id inside each URL is shortened on screen (the full URL stays in the
// link and its title).
const urlList = (urls, live = true, id = '') => {
  if (!urls || !urls.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'urls' }, urls.map((u) => {
    const m = /^([A-Z]+)\s+(\S+)$/.exec(u);
    if (!m) return h('li', null, h('code', null, u));
    const shown = id ? m[2].split(id).join(shortId(id)) : m[2];
    const link = live && m[1] === 'GET' && /^https?:\/\//.test(m[2]) && !m[2].includes('{');
    return h('li', null, h('span', { class: 'method' }, m[1]), ' ',
      link ? h('a', { href: m[2], target: '_blank', rel: 'noopener', title: m[2] }, shown) : h('code', { title: m[2] }, shown));
  }));
};

function fillStackRow(tr, s) {
  const st = stackState(s);
  tr.dataset.state = st;
  const cells = tr.children;
  fill(cells[0], s.name || h('span', { class: 'muted' }, '(unnamed)'));
  fill(cells[1], h('code', { title: s.id }, shortId(s.id)));
  fill(cells[2], regionName(s.region));
  fill(cells[3], int(s.revision));
  fill(cells[4], badge(st));
  fill(cells[5], urlList(s.urls, st === 'active', s.id));
  if (!cells[6].firstChild) {
    const id = encodeURIComponent(s.id);
    const who = s.name || shortId(s.id);
    add(cells[6], [h('a', { href: `#/stacks/${id}`, 'aria-label': `Details of ${who}` }, 'Details'), ' · ',
      h('a', { href: `#/stacks/${id}/logs`, 'aria-label': `Logs of ${who}` }, 'Logs')]);
  }
}

const stackRow = (s) => {
  const tr = h('tr', { 'data-id': s.id }, h('th', { scope: 'row' }), h('td'), h('td'), h('td', { class: 'num' }), h('td'), h('td', { class: 'urlcell' }), h('td', { class: 'links' }));
  fillStackRow(tr, s);
  return tr;
};

async function viewStacks() {
  const [stacks] = await Promise.all([api.stacks(), cached('regions', api.regions)]);
  store.stacks = new Map(stacks.map((s) => [s.id, s]));
  const tbody = h('tbody', null, stacks.map(stackRow));
  const table = h('table', { id: 'stacks', class: 'data' }, h('caption', null, 'My stacks'),
    h('thead', null, h('tr', null, ['Name', 'ID', 'Region', 'Revision', 'State', 'URLs', 'Links'].map((c, i) =>
      h('th', { scope: 'col', class: i === 3 ? 'num' : null }, c)))), tbody);
  return h('div', null, heading('Stacks'),
    h('p', { class: 'lead' }, 'Stacks deployed with this key. ', badge('paused'), ' means the region disabled the stack because the escrow with its provider is under the region minimum: top it up on the ', h('a', { href: '#/escrow' }, 'Escrow'), ' page.'),
    h('p', { class: 'empty', id: 'stacks-empty', hidden: stacks.length ? true : null }, 'No stacks yet. Deploy one with ', h('code', null, 'mu deploy DIR --provider NAME'), '.'),
    tableWrap(table, 'My stacks'));
}

// ---------- Stack detail ----------

async function viewStack(id, logsRoute) {
  const [s, usage] = await Promise.all([api.stack(id), api.usage(id, USAGE_BUCKETS, USAGE_MINUTES).catch((e) => e), cached('regions', api.regions)]);
  store.stacks.set(s.id, s);
  const served = s.served || {};
  const owner = served.owner || {};
  const st = stackState(s);
  const node = h('div', { class: 'detail', 'data-id': s.id },
    h('p', { class: 'back' }, h('a', { href: '#/stacks' }, '← All stacks')),
    heading('Stack ', h('span', { class: 'name' }, s.name || shortId(s.id))),
    section('Overview', dl([
      ['ID', h('code', { class: 'wrap' }, s.id)],
      ['State', [badge(st), served.disabled_reason ? h('span', { class: 'muted' }, ` ${served.disabled_reason}`) : null], 'state'],
      ['Region', regionName(s.region)],
      ['Revision', [int(s.revision), served.revision != null && served.revision !== s.revision ? h('span', { class: 'muted' }, ` (the region serves revision ${int(served.revision)})`) : null], 'revision'],
      owner.node ? ['Owner node', [h('code', { title: owner.node }, shortId(owner.node)),
        owner.deployed === false ? ' (not deployed yet)' : owner.deployed ? ` (revision ${int(owner.revision)} deployed)` : null,
        owner.error ? h('span', { class: 'error-text' }, ` ${owner.error}`) : null]] : null,
      ['URLs', urlList(s.urls, st === 'active'), 'urls'],
    ])));
  node.append(usage instanceof Error ? section('Usage', errorBox(usage)) : usageSection(usage));
  const logs = logsSection(s.id);
  node.append(logs.node);
  const after = (first) => {
    logs.load();
    if (logsRoute) {
      const h2 = logs.node.querySelector('h2');
      h2.setAttribute('tabindex', '-1');
      h2.focus();
      logs.node.scrollIntoView();
    } else if (!first) node.querySelector('h1').focus();
  };
  return [node, after];
}

function usageSection(u) {
  const buckets = u.buckets || [];
  const starts = buckets.map((b) => b.start), ends = buckets.map((b) => b.end);
  const col = (k) => buckets.map((b) => b[k] ?? 0);
  const totals = u.totals || {};
  const mins = u.from && u.to ? Math.round((new Date(u.to) - new Date(u.from)) / 60000) : USAGE_MINUTES;
  const charts = h('div', { class: 'charts', id: 'charts' },
    chart({ key: 'requests', title: 'Requests', kind: 'bar', starts, ends, series: [{ name: 'Requests', values: col('requests') }], fmt: int }),
    chart({ key: 'errors', title: 'Errors', starts, ends, series: [{ name: '5xx', values: col('errors') }, { name: '4xx', values: col('client_errors') }], fmt: int }),
    chart({ key: 'traffic', title: 'Traffic', starts, ends, series: [{ name: 'Traffic', values: col('traffic_bytes') }], binary: true, fmt: bytes }),
    chart({ key: 'mb_instructions', title: 'MB-instructions', starts, ends, series: [{ name: 'MB-instructions', values: col('mb_instructions') }], fmt: int }),
    chart({ key: 'db', title: 'Database reads and writes', starts, ends, series: [{ name: 'Reads', values: col('db_reads') }, { name: 'Writes', values: col('db_writes') }], fmt: int }),
    chart({ key: 'storage', title: 'Storage traffic', starts, ends, series: [{ name: 'Bytes moved', values: col('storage_bytes') }], binary: true, fmt: bytes }));
  const set = u.settlements || [];
  const table = h('table', { id: 'settlements', class: 'data' },
    h('caption', null, 'Metered units behind each settlement'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Seed'), h('th', { scope: 'col', class: 'num' }, 'Charged'),
      METRICS.map((m) => h('th', { scope: 'col', class: 'num' }, m.label)))),
    h('tbody', null, set.map((x) => h('tr', null,
      h('th', { scope: 'row' }, dateTime(x.time)), h('td', null, h('code', { title: x.seed }, shortId(x.seed))), h('td', { class: 'num' }, int(x.charged)),
      METRICS.map((m) => h('td', { class: 'num' }, m.fmt((x.units || {})[m.key] ?? 0)))))));
  return h('div', null,
    section(mins >= 120 && mins % 60 === 0 ? `Usage, last ${mins / 60} hours` : `Usage, last ${mins} minutes`,
      h('p', { class: 'lead' }, METRICS.map((m, i) => [i ? ' · ' : '', `${m.label} ${m.fmt(totals[m.key] ?? 0)}`]),
        h('br'), h('strong', null, `Cost ${dec(u.cost)}`), ' base units over the window, at the region\'s prices.'),
      charts),
    section('Settlements',
      set.length ? tableWrap(table, 'Settlements') : h('p', { class: 'empty' }, 'No settlement in this window yet: the region\'s billing settles usage every report interval.')));
}

function logsSection(id) {
  const pre = h('pre', { class: 'logs', tabindex: '0', 'aria-label': `Last ${LOG_TAIL} log lines, newest at the bottom` });
  const status = h('span', { class: 'muted', role: 'status' });
  const btn = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  const err = h('div');
  const node = h('section', { id: 'logs', 'aria-labelledby': 'logs-h' },
    h('div', { class: 'bar' }, h('h2', { id: 'logs-h' }, 'Logs'), btn, status), err, pre);
  async function load() {
    btn.disabled = true;
    status.textContent = 'Loading…';
    try {
      const text = await api.logs(id, LOG_TAIL);
      const lines = String(text).replace(/\n+$/, '');
      pre.textContent = lines || '(no log lines yet)';
      pre.scrollTop = pre.scrollHeight;
      fill(err);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      fill(err, errorBox(e));
      status.textContent = '';
    } finally {
      btn.disabled = false;
    }
  }
  btn.addEventListener('click', load);
  return { node, load };
}

// ---------- Escrow ----------

const escrowStats = (e) => dl([
  ['Balance', int(e.balance), 'balance'],
  ['Minimum', int(e.minimum), 'minimum'],
  ['Burn per hour', e.burn_per_hour == null ? h('span', { class: 'muted' }, 'not measured yet') : int(e.burn_per_hour), 'burn'],
  ['Time left', e.time_left || h('span', { class: 'muted' }, '—'), 'time_left'],
  ['Active stacks', int(e.active_stacks ?? 0), 'active_stacks'],
]);

const warning = (e) => e.warning
  ? h('p', { class: 'warn' }, h('strong', null, 'Warning: '), e.warning_reason || 'the balance is low.')
  : null;

function updateEscrowCard(card, e) {
  card.querySelector('.stats').replaceChildren(escrowStats(e));
  fill(card.querySelector('.warnbox'), warning(e));
  card.classList.toggle('warning', !!e.warning);
}

function escrowCard(e) {
  const hid = uid('esc');
  const card = h('article', { class: 'card', 'data-provider': e.provider, 'aria-labelledby': hid },
    h('h3', { id: hid }, e.provider_name || shortId(e.provider)),
    h('p', { class: 'muted sub' }, 'Provider ', h('code', { title: e.provider }, shortId(e.provider))),
    h('div', { class: 'warnbox' }),
    h('div', { class: 'stats' }),
    amountForm(e, 'recharge', 'Top up', 'Amount to add'),
    amountForm(e, 'withdraw', 'Withdraw', 'Amount to withdraw'));
  updateEscrowCard(card, e);
  return card;
}

function amountForm(e, op, verb, label) {
  const id = uid(op), errId = uid('err');
  const input = h('input', { id, name: 'amount', type: 'text', inputmode: 'numeric', autocomplete: 'off', required: true, 'aria-describedby': errId, placeholder: 'base units' });
  const btn = h('button', { type: 'submit', class: op === 'withdraw' ? 'secondary' : null }, verb);
  const msg = h('p', { id: errId, class: 'formmsg', role: 'alert' });
  const form = h('form', { class: 'amount', 'data-op': op, novalidate: true },
    h('label', { for: id }, label), h('div', { class: 'row' }, input, btn), msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const amount = input.value.trim().replace(/[\s,_]/g, '');
    msg.className = 'formmsg';
    if (!/^\d+$/.test(amount) || /^0+$/.test(amount)) {
      input.setAttribute('aria-invalid', 'true');
      msg.textContent = 'Enter a whole number of token base units, greater than 0.';
      input.focus();
      return;
    }
    input.removeAttribute('aria-invalid');
    btn.disabled = true;
    form.setAttribute('aria-busy', 'true');
    msg.textContent = '';
    try {
      const next = await (op === 'recharge' ? api.recharge(e.provider, amount) : api.withdraw(e.provider, amount));
      store.escrows.set(next.provider, next);
      updateEscrowCard(form.closest('.card'), next);
      input.value = '';
      msg.className = 'formmsg ok';
      msg.textContent = `${op === 'recharge' ? 'Added' : 'Withdrew'} ${int(BigInt(amount))}. Balance now ${int(next.balance)}.`;
    } catch (err) {
      msg.className = 'formmsg error-text';
      msg.textContent = err.message;
      input.setAttribute('aria-invalid', 'true');
    } finally {
      btn.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
  return form;
}

function createForm(providers, grid) {
  const id = uid('prov');
  const select = h('select', { id, name: 'provider', required: true });
  const btn = h('button', { type: 'submit' }, 'Create escrow');
  const msg = h('p', { class: 'formmsg', role: 'alert' });
  const fields = h('div', null, h('label', { for: id }, 'Provider'), h('div', { class: 'row' }, select, btn));
  const none = h('p', { class: 'muted' }, 'You have an escrow with every provider on the marketplace.');
  const refresh = () => {
    const free = providers.filter((p) => !store.escrows.has(p.id));
    fill(select, free.map((p) => h('option', { value: p.id }, `${p.name || shortId(p.id)}${p.authorized === false ? ' (not authorized yet)' : ''}`)));
    fields.hidden = !free.length;
    none.hidden = !!free.length;
    btn.disabled = false;
  };
  refresh();
  const form = h('form', { id: 'create-escrow', novalidate: true }, fields, none, msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!select.value) return;
    btn.disabled = true;
    msg.className = 'formmsg';
    msg.textContent = '';
    try {
      const e = await api.createEscrow(select.value);
      store.escrows.set(e.provider, e);
      grid.querySelector('.empty')?.remove();
      grid.append(escrowCard(e));
      msg.className = 'formmsg ok';
      msg.textContent = `Escrow with ${e.provider_name || shortId(e.provider)} created. Top it up to at least the region minimum before you deploy.`;
    } catch (err) {
      msg.className = 'formmsg error-text';
      msg.textContent = err.message;
    } finally {
      refresh();
    }
  });
  return form;
}

async function viewEscrow() {
  const [escrows, providers] = await Promise.all([api.escrows(), api.providers().catch(() => []), sessionReady]);
  store.providers = providers;
  store.escrows = new Map(escrows.map((e) => [e.provider, e]));
  const grid = h('div', { class: 'cards', id: 'escrows' }, escrows.length ? escrows.map(escrowCard)
    : h('p', { class: 'empty' }, 'No escrow yet: create one with a provider below, then top it up.'));
  const hours = store.session?.warn_hours;
  return h('div', null, heading('Escrow'),
    h('p', { class: 'lead' }, 'One prepaid account per provider; the region charges it for your stacks\' usage. Amounts are token base units. ',
      `A warning shows when the balance is under the minimum${hours ? ` or lasts less than ${hours} h at the current burn` : ''}; under the minimum, the region pauses your stacks.`),
    section('Your escrows', grid),
    section('Open an escrow', createForm(providers, grid)));
}

// ---------- Provider ----------

async function viewProvider() {
  const res = await api.provider();
  const p = res && res.provider;
  if (!p) {
    return h('div', null, heading('Provider'),
      h('p', { class: 'empty', id: 'no-provider' }, 'This profile\'s key owns no provider. To sell capacity on the marketplace, register one with ',
        h('code', null, 'mu provider create NAME --deposit AMOUNT'), ', have the marketplace authority authorize it, then create regions with ',
        h('code', null, 'mu provider region create'), '.'));
  }
  const regions = res.regions || [];
  const total = regions.reduce((a, r) => a + BigInt(r.earnings ?? 0), 0n);
  const table = h('table', { id: 'provider-regions', class: 'data' }, h('caption', null, 'My regions'),
    h('thead', null, h('tr', null, ['Region', 'Number', 'Base URL', 'Min escrow', 'Stacks', 'Requests', 'Earnings'].map((c, i) =>
      h('th', { scope: 'col', class: i === 1 || i > 2 ? 'num' : null }, c)))),
    h('tbody', null, regions.map((x) => {
      const r = x.region || {};
      return h('tr', { 'data-key': r.id }, h('th', { scope: 'row' }, r.name || shortId(r.id)), h('td', { class: 'num' }, int(r.number)),
        h('td', null, h('code', { class: 'wrap' }, r.base_url || '—')), h('td', { class: 'num' }, int(r.min_escrow)),
        h('td', { class: 'num' }, int(x.stacks)), h('td', { class: 'num' }, int(x.requests)), h('td', { class: 'num' }, int(x.earnings)));
    })));
  return h('div', null, heading('Provider ', h('span', { class: 'name' }, p.name)),
    section('Account', dl([
      ['ID', h('code', { class: 'wrap' }, p.id)],
      ['Owner', h('code', { class: 'wrap' }, p.owner)],
      ['Deposit', int(p.deposit)],
      ['Authorization', p.authorized ? h('span', { class: 'badge active', title: 'Authorized by the marketplace authority' }, 'authorized')
        : h('span', { class: 'badge paused', title: 'The marketplace authority has not authorized this provider yet' }, 'waiting for authorization'), 'authorized'],
      ['Earnings', int(total), 'earnings'],
    ])),
    section('Regions', regions.length ? tableWrap(table, 'My regions')
      : h('p', { class: 'empty' }, 'No region yet: create one with ', h('code', null, 'mu provider region create'), '.')));
}

// ---------- Live updates ----------

function onStack(s) {
  const prev = store.stacks.get(s.id);
  store.stacks.set(s.id, { ...prev, ...s });
  const st = stackState(s);
  if (view.name === 'stacks') {
    const tbody = main.querySelector('#stacks tbody');
    if (!tbody) return;
    const tr = tbody.querySelector(`tr[data-id="${CSS.escape(s.id)}"]`);
    if (tr) fillStackRow(tr, s);
    else { tbody.append(stackRow(s)); main.querySelector('#stacks-empty')?.setAttribute('hidden', ''); }
  } else if (view.name === 'stack' && view.args[0] === s.id) {
    const d = main.querySelector('.detail');
    if (!d) return;
    const setDD = (k, ...v) => { const dd = d.querySelector(`[data-k="${k}"] dd`); if (dd) fill(dd, ...v); };
    setDD('state', badge(st));
    setDD('revision', int(s.revision));
    setDD('urls', urlList(s.urls, st === 'active'));
  }
  if (prev && stackState(prev) !== st) announce(`Stack ${s.name || shortId(s.id)} is now ${st}.`);
}

function onEscrow(e) {
  const prev = store.escrows.get(e.provider);
  store.escrows.set(e.provider, e);
  if (view.name !== 'escrow') return;
  const grid = main.querySelector('#escrows');
  if (!grid) return;
  const card = grid.querySelector(`.card[data-provider="${CSS.escape(e.provider)}"]`);
  if (card) updateEscrowCard(card, e);
  else { grid.querySelector('.empty')?.remove(); grid.append(escrowCard(e)); }
  if (e.warning && !(prev && prev.warning)) announce(`Escrow with ${e.provider_name || shortId(e.provider)}: ${e.warning_reason || 'balance low'}.`);
}

function connectEvents() {
  const conn = document.getElementById('conn');
  const text = document.getElementById('conn-text');
  const set = (state, label) => {
    if (conn.dataset.state === state) return;
    conn.dataset.state = state;
    text.textContent = label;
  };
  let es, retry = 1000;
  const open = () => {
    set('connecting', 'connecting');
    es = new EventSource('/api/events');
    es.onopen = () => { retry = 1000; set('live', 'live'); };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        set('offline', 'offline, retrying');
        setTimeout(open, retry);
        retry = Math.min(retry * 2, 30000);
      } else set('connecting', 'reconnecting');
    };
    const on = (name, fn) => es.addEventListener(name, (ev) => {
      try { fn(parseJSON(ev.data)); } catch (err) { console.error(`bad ${name} event`, err); }
    });
    on('stack', onStack);
    on('escrow', onEscrow);
  };
  open();
}

// ---------- Start ----------

async function loadSession() {
  const prof = document.getElementById('profile');
  const addr = document.getElementById('address');
  try {
    const s = await api.session();
    store.session = s;
    prof.textContent = s.profile || 'default';
    addr.textContent = shortId(s.address);
    addr.title = s.address || '';
  } catch (e) {
    prof.textContent = 'unknown';
    addr.textContent = 'unavailable';
    addr.title = e.message;
  }
}

document.getElementById('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  (main.querySelector('h1') || main).focus();
});
window.addEventListener('hashchange', () => route(false));
const sessionReady = loadSession();
connectEvents();
route(true);
