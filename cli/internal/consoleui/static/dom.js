// Small DOM and formatting helpers shared by the views and the charts.

let seq = 0;
/** uid returns an id unique in the page, for label/aria wiring. */
export const uid = (p = 'id') => `${p}-${++seq}`;

/** h builds an element: h('p', {class: 'x', onclick: f}, 'text', child). Text is never parsed as HTML. */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  add(el, kids);
  return el;
}

export function setAttrs(el, attrs) {
  if (!attrs) return el;
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return el;
}

export function add(el, kids) {
  for (const k of [kids].flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

/** fill replaces the children of el. */
export const fill = (el, ...kids) => { el.replaceChildren(); return add(el, kids); };

const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const numFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

/** int formats an integer amount (number or BigInt) with grouping; '—' when absent. */
export function int(n) {
  if (n == null || n === '') return '—';
  if (typeof n === 'bigint') return n.toLocaleString();
  const v = Number(n);
  return Number.isFinite(v) ? intFmt.format(v) : String(n);
}

/** dec formats a decimal string such as "3410.77" with grouping, keeping its digits. */
export function dec(s) {
  if (s == null || s === '') return '—';
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(String(s));
  if (!m) return String(s);
  return m[1] + BigInt(m[2]).toLocaleString() + (m[3] || '');
}

export const num = (n) => (n == null ? '—' : numFmt.format(Number(n)));
export const short = (n) => compact.format(Number(n));

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
/** bytes formats a byte count with binary units. */
export function bytes(n) {
  let v = Number(n);
  if (!Number.isFinite(v)) return '—';
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(v < 10 ? 1 : 0) : v} ${UNITS[i]}`;
}

const tFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dtFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const valid = (d) => d instanceof Date && !Number.isNaN(d.getTime());
export const time = (d) => (valid(d = new Date(d)) ? tFmt.format(d) : '—');
export const dateTime = (d) => (valid(d = new Date(d)) ? dtFmt.format(d) : '—');

/** shortId keeps the head and tail of a long base58 id. */
export const shortId = (id) => (id && id.length > 14 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id || '—');

/** stackState is the state a person sees: active, paused (escrow too low) or deleted. */
export function stackState(s) {
  if (s.state === 'deleted') return 'deleted';
  return s.enabled === false ? 'paused' : 'active';
}

const STATE_HINT = {
  active: 'Serving requests',
  paused: 'Disabled: the escrow with this provider is under the region minimum; top it up to resume',
  deleted: 'Deleted on the ledger; its tables and boxes are removed',
};
export const badge = (state, hint) =>
  h('span', { class: `badge ${state}`, title: hint || STATE_HINT[state] || state }, state);

/** tableWrap puts a table in its own horizontally scrolling, keyboard-focusable box. */
export const tableWrap = (table, label) =>
  h('div', { class: 'tablewrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
