// Small inline SVG charts: lines or bars of a few series over time buckets,
// with labelled axes, an SVG <title> summary and a visually hidden data table.

import { h, uid, time } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** ticks picks 0..top in 3-5 round steps, in decimal (k, M, G) or binary (KiB, MiB) units. */
export function ticks(max, binary) {
  const base = binary ? 1024 : 1000;
  const names = binary ? ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] : ['', 'k', 'M', 'G', 'T', 'P'];
  if (!(max > 0)) max = 1;
  let p = 0;
  while (max >= base ** (p + 1) && p < names.length - 1) p++;
  const div = base ** p;
  const m = max / div;
  const raw = m / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((x) => x * mag).find((x) => x >= raw - 1e-12);
  if (p === 0 && step < 1) step = 1; // counts and bytes are whole
  const top = Math.ceil(m / step - 1e-9) * step;
  const values = [];
  for (let i = 0; i * step <= top + 1e-9; i++) values.push(i * step * div);
  const unit = names[p];
  const label = (v) => {
    if (v === 0) return '0';
    const x = plain.format(+(v / div).toFixed(3));
    return binary ? `${x} ${unit}` : x + unit;
  };
  return { top: top * div, values, label };
}

/**
 * chart returns a <figure> with a chart of series over time buckets.
 * opts: title, kind ('line' | 'bar'), starts (bucket start times), ends,
 * series [{name, values}], binary (byte units), fmt (a value as text),
 * summary ('sum' | 'last').
 */
export function chart(opts) {
  const { title, kind = 'line', starts, ends = [], series, binary = false, fmt = plain.format, summary = 'sum' } = opts;
  const n = starts.length;
  const fig = h('figure', { class: 'chart', 'data-chart': opts.key || '' });
  const plot = h('div', { class: 'plot' });
  const sums = series.map((se) => {
    const vals = se.values.map(Number);
    const max = Math.max(0, ...vals);
    const at = vals.indexOf(max);
    const v = summary === 'last' ? vals[vals.length - 1] ?? 0 : vals.reduce((a, b) => a + b, 0);
    return { name: se.name, v, max, at };
  });
  const sumText = sums
    .map((x) => `${series.length > 1 ? `${x.name} ` : ''}${summary === 'last' ? 'now' : 'total'} ${fmt(x.v)}` +
      (x.max > 0 && summary !== 'last' ? `, peak ${fmt(x.max)} at ${time(starts[x.at])}` : ''))
    .join('; ');
  const label = `${title}, ${n} buckets from ${time(starts[0])} to ${time(ends[n - 1] || starts[n - 1])}: ${sumText}`;
  fig.append(h('figcaption', null, h('span', { class: 'ct' }, title), ' ', h('span', { class: 'cd' }, sumText)));
  fig.append(plot);
  if (series.length > 1) {
    fig.append(h('ul', { class: 'legend', 'aria-hidden': 'true' },
      series.map((se, i) => h('li', null, h('span', { class: `sw s${i}` }), se.name))));
  }
  fig.append(dataTable(title, starts, ends, series, fmt));
  if (!n) {
    plot.append(h('p', { class: 'muted' }, 'No usage in this window.'));
    return fig;
  }

  const titleId = uid('ct');
  const max = Math.max(0, ...series.flatMap((se) => se.values.map(Number)));
  const t = ticks(max, binary);
  let drawn = 0;
  const draw = (w) => {
    w = Math.max(240, Math.round(w));
    if (w === drawn) return;
    drawn = w;
    plot.replaceChildren(svg(w));
  };
  const svg = (W) => {
    const H = 190, top = 10, right = 12, bottom = 24;
    const left = Math.max(...t.values.map((v) => t.label(v).length)) * 6.6 + 12;
    const pw = W - left - right, ph = H - top - bottom;
    const band = pw / n;
    const y = (v) => top + ph - (Number(v) / t.top) * ph;
    const x = (i) => left + band * (i + 0.5);
    const root = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': titleId });
    root.append(s('title', { id: titleId }, label));
    const g = s('g', { class: 'axes', 'aria-hidden': 'true' });
    for (const v of t.values) {
      g.append(s('line', { class: 'grid', x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      g.append(s('text', { class: 'lbl', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, t.label(v)));
    }
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(pw / 60))));
    for (let i = 0; i < n; i += every) {
      g.append(s('line', { class: 'tick', x1: x(i), x2: x(i), y1: top + ph, y2: top + ph + 4 }));
      g.append(s('text', { class: 'lbl', x: x(i), y: H - 6, 'text-anchor': 'middle' }, time(starts[i])));
    }
    g.append(s('line', { class: 'axis', x1: left, x2: W - right, y1: top + ph, y2: top + ph }));
    root.append(g);
    series.forEach((se, si) => {
      const cls = `s${si}`;
      if (kind === 'bar') {
        const bw = (band * 0.8) / series.length;
        se.values.forEach((v, i) => {
          const yy = y(v);
          const r = s('rect', { class: `pt bar ${cls}`, x: x(i) - band * 0.4 + si * bw, y: yy, width: Math.max(1, bw - 1), height: Math.max(0, top + ph - yy) });
          r.append(s('title', null, `${time(starts[i])} ${se.name}: ${fmt(v)}`));
          root.append(r);
        });
        return;
      }
      root.append(s('polyline', { class: `ln ${cls}`, points: se.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ') }));
      se.values.forEach((v, i) => {
        const c = s('circle', { class: `pt ${cls}`, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: W < 420 ? 2 : 3 });
        c.append(s('title', null, `${time(starts[i])} ${se.name}: ${fmt(v)}`));
        root.append(c);
      });
    });
    return root;
  };
  draw(480);
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver((entries) => {
      const w = entries[0].contentRect.width;
      if (w > 0) draw(w);
    }).observe(plot);
  }
  return fig;
}

function dataTable(title, starts, ends, series, fmt) {
  return h('table', { class: 'vh' },
    h('caption', null, `${title}, data`),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Bucket'), series.map((se) => h('th', { scope: 'col' }, se.name)))),
    h('tbody', null, starts.map((st, i) => h('tr', null,
      h('th', { scope: 'row' }, ends[i] ? `${time(st)}–${time(ends[i])}` : time(st)),
      series.map((se) => h('td', null, fmt(se.values[i])))))));
}
