// Small SVG charts for the portal's pages: a bar chart (one bar per item, e.g. per resource) and
// a line chart (a value over time, e.g. a market rate's 5-minute history).
//
// Accessible by construction: the <svg> is one image (role="img") whose aria-label reads every
// number, and the same numbers stand in a table beside it, so nothing is only in the picture.
// No inline style attributes (the portal's CSP is `style-src 'self'`): geometry goes in SVG
// attributes, colours in CSS classes (pages.css).
//
// The numbers shown are the server's strings, as given; they are turned into JS numbers only to
// size bars and place points, where a float's last digit does not matter.
import { h, svg } from './dom.js';

/**
 * A box that scrolls a wide table sideways on a narrow screen (the page itself never does). It
 * can take the focus and is named, so a keyboard user can scroll it too.
 */
export function scrollBox(label, child) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': label }, child);
}

/** A value's position along [0, 1] between `low` and `high`; the middle when they are equal. */
function scale(value, low, high) {
  if (!(high > low)) return 0.5;
  return (value - low) / (high - low);
}

function magnitude(text) {
  const value = Number(text);
  return Number.isFinite(value) ? value : 0;
}

/** The chart itself: one SVG image whose accessible name (`label`) reads every number. */
function picture(width, height, label, parts) {
  return svg(
    'svg',
    {
      class: 'chart-svg',
      viewBox: `0 0 ${width} ${height}`,
      width: '100%',
      preserveAspectRatio: 'xMinYMin meet',
      role: 'img',
      'aria-label': label,
    },
    ...parts,
  );
}

/** The same numbers as a table: `headings` for the columns, each row's first cell its heading. */
function numbersTable(title, headings, rows) {
  const [first, ...rest] = headings;
  return h(
    'table',
    { class: 'chart-table' },
    h('caption', { class: 'visually-hidden' }, title),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, first), ...rest.map((heading) => h('th', { scope: 'col', class: 'num' }, heading)))),
    h('tbody', {}, ...rows.map(([label, ...cells]) => h('tr', {}, h('th', { scope: 'row' }, label), ...cells.map((cell) => h('td', { class: 'num' }, cell))))),
  );
}

/**
 * A horizontal bar chart: one row per item, longest bar for the largest value.
 *
 * @param {{title: string, items: {label: string, value: string, shown?: string}[], caption?: string,
 *          valueHeading?: string, className?: string}} chart
 *   `value` the server's figure (a decimal string), `shown` how to print it (default: `value`).
 * @returns {HTMLElement} a <figure> holding the SVG and a table of the same numbers.
 */
export function barChart({ title, items, caption, valueHeading = 'Credits', className = '' }) {
  const rowHeight = 26;
  const labelWidth = 96;
  const barWidth = 170;
  const width = 320;
  const height = Math.max(1, items.length) * rowHeight + 4;
  const largest = Math.max(0, ...items.map((item) => magnitude(item.value)));
  const spoken = items.map((item) => `${item.label} ${item.shown ?? item.value}`).join(', ');
  const rows = items.map((item, index) => {
    const y = index * rowHeight + 2;
    const value = magnitude(item.value);
    const length = largest > 0 ? Math.max(value > 0 ? 2 : 0, (value / largest) * barWidth) : 0;
    return svg(
      'g',
      { class: 'chart-row' },
      svg('text', { x: 0, y: y + 17, class: 'chart-label' }, item.label),
      svg('rect', { x: labelWidth, y: y + 4, width: length.toFixed(1), height: rowHeight - 8, rx: 2, class: 'chart-bar' }),
      svg('text', { x: labelWidth + length + 6, y: y + 17, class: 'chart-value' }, item.shown ?? item.value),
    );
  });
  const image = picture(width, height, `${title}: ${spoken || 'nothing'}`, rows);
  const table = numbersTable(
    title,
    ['Item', valueHeading],
    items.map((item) => [item.label, item.shown ?? item.value]),
  );
  return h(
    'figure',
    { class: `chart chart-bars ${className}`.trim() },
    h('figcaption', {}, caption ?? title),
    h('div', { class: 'chart-body' }, image, table),
  );
}

/**
 * A line chart of one value over time, oldest on the left, with the range of a second pair of
 * values (lowest and highest) as a band when given.
 *
 * @param {{title: string, points: {at: string, label: string, value: string, low?: string, high?: string}[],
 *          columns: {heading: string, cell: (point) => string}[], caption?: string}} chart
 *   `points` in time order, oldest first; `label` how the instant is printed; `columns` the
 *   table's columns after the time.
 */
export function lineChart({ title, points, columns, caption }) {
  const width = 320;
  const height = 150;
  const left = 44;
  const right = 8;
  const top = 10;
  const bottom = 24;
  const values = points.flatMap((p) => [p.value, p.low, p.high]).filter((v) => v != null).map(magnitude);
  const lowest = values.length ? Math.min(...values) : 0;
  const highest = values.length ? Math.max(...values) : 0;
  const x = (index) => left + (points.length > 1 ? (index / (points.length - 1)) * (width - left - right) : (width - left - right) / 2);
  const y = (value) => top + (1 - scale(magnitude(value), lowest, highest)) * (height - top - bottom);
  const spoken = points.map((p) => `${p.label} ${p.value}`).join(', ');
  const parts = [
    svg('line', { x1: left, y1: top, x2: left, y2: height - bottom, class: 'chart-axis' }),
    svg('line', { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: 'chart-axis' }),
  ];
  if (points.length) {
    const lowText = points.reduce((a, p) => (magnitude(p.low ?? p.value) < magnitude(a) ? (p.low ?? p.value) : a), points[0].low ?? points[0].value);
    const highText = points.reduce((a, p) => (magnitude(p.high ?? p.value) > magnitude(a) ? (p.high ?? p.value) : a), points[0].high ?? points[0].value);
    parts.push(
      svg('text', { x: left - 4, y: top + 4, class: 'chart-tick', 'text-anchor': 'end' }, highText),
      svg('text', { x: left - 4, y: height - bottom, class: 'chart-tick', 'text-anchor': 'end' }, lowText),
      svg('text', { x: left, y: height - 6, class: 'chart-tick' }, points[0].label),
    );
    if (points.length > 1) {
      parts.push(svg('text', { x: width - right, y: height - 6, class: 'chart-tick', 'text-anchor': 'end' }, points[points.length - 1].label));
    }
    if (points.every((p) => p.low != null && p.high != null) && points.length > 1) {
      const upper = points.map((p, i) => `${x(i).toFixed(1)},${y(p.high).toFixed(1)}`);
      const lower = points.map((p, i) => `${x(i).toFixed(1)},${y(p.low).toFixed(1)}`).reverse();
      parts.push(svg('polygon', { points: [...upper, ...lower].join(' '), class: 'chart-band' }));
    }
    if (points.length > 1) {
      parts.push(svg('polyline', { points: points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' '), class: 'chart-line' }));
    }
    points.forEach((p, i) => {
      parts.push(svg('circle', { cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 3, class: 'chart-point' }, svg('title', {}, `${p.label}: ${p.value}`)));
    });
  }
  const image = picture(width, height, `${title}: ${spoken || 'no data yet'}`, parts);
  const table = numbersTable(
    title,
    ['Time', ...columns.map((c) => c.heading)],
    // Newest first in the table, as the server lists them.
    points
      .slice()
      .reverse()
      .map((p) => [p.label, ...columns.map((c) => c.cell(p))]),
  );
  return h(
    'figure',
    { class: 'chart chart-line-figure' },
    h('figcaption', {}, caption ?? title),
    h('div', { class: 'chart-body' }, image, scrollBox(`${title}, as a table`, table)),
  );
}
