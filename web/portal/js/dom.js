// Building the page without markup strings: every text the server sends (reasons, coupon codes,
// names) becomes a TEXT node, so nothing a user or a backend wrote can turn into an element.
// Nothing in the portal parses a string as markup (a unit test in src/portal.rs checks).
// Amounts are decimal strings from the server; they are formatted and multiplied as strings and
// BigInts, never as floats.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (name === 'style') {
      // An object of properties, set through the DOM (a `style="..."` attribute would break
      // the Content-Security-Policy, which forbids inline styles).
      for (const [property, v] of Object.entries(value)) el.style.setProperty(property, v);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
}

/** An HTML element: `h('p', { class: 'note' }, 'text', child)`. Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  return append(el, children);
}

/** An SVG element, for charts: `svg('rect', { x: 0, width: 10 })`. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  return append(el, children);
}

/** Removes every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A decimal string as a BigInt of units of 10^-scale: "12.5" -> { units: 125n, scale: 1 }. */
export function parseDecimal(text) {
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!match || (match[2] === '' && (match[3] || '') === '')) return null;
  const fraction = match[3] || '';
  const units = BigInt((match[2] || '0') + fraction) * (match[1] ? -1n : 1n);
  return { units, scale: fraction.length };
}

/** `value` (a BigInt of 10^-scale units) rounded to a whole number, halves away from zero. */
function roundHalfAwayFromZero(units, scale) {
  if (scale === 0) return units;
  const divisor = 10n ** BigInt(scale);
  const negative = units < 0n;
  const magnitude = negative ? -units : units;
  let whole = magnitude / divisor;
  if ((magnitude % divisor) * 2n >= divisor) whole += 1n;
  return negative ? -whole : whole;
}

/**
 * The price in minor units of `credits` at `minorPerCredit` (both decimal strings), rounded as
 * the server rounds it (src/ledger/money.rs `price_of`: half away from zero), or null when
 * either is not a number.
 */
export function priceMinor(credits, minorPerCredit) {
  const a = parseDecimal(credits);
  const b = parseDecimal(minorPerCredit);
  if (!a || !b) return null;
  return roundHalfAwayFromZero(a.units * b.units, a.scale + b.scale);
}

/** Compares two decimal strings: -1, 0 or 1 (null when either is not a number). */
export function compareDecimal(x, y) {
  const a = parseDecimal(x);
  const b = parseDecimal(y);
  if (!a || !b) return null;
  const scale = Math.max(a.scale, b.scale);
  const left = a.units * 10n ** BigInt(scale - a.scale);
  const right = b.units * 10n ** BigInt(scale - b.scale);
  return left < right ? -1 : left > right ? 1 : 0;
}

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A credit amount from the server ("1234.500") for reading: "1,234.5". */
export function formatCredits(text) {
  if (text === null || text === undefined) return '';
  const match = /^([-+]?)(\d+)(?:\.(\d+))?$/.exec(String(text).trim());
  if (!match) return String(text);
  const fraction = (match[3] || '').replace(/0+$/, '');
  return `${match[1] === '-' ? '-' : ''}${group(match[2])}${fraction ? `.${fraction}` : ''}`;
}

/** Currencies whose minor unit is the unit itself (ISO 4217 exponent 0); others have 2. */
const NO_MINOR_UNIT = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']);

/** An amount in minor units (an integer, or its string) as "12.34 USD", by string arithmetic. */
export function formatMoney(amountMinor, currency) {
  const text = typeof amountMinor === 'bigint' ? amountMinor.toString() : String(amountMinor);
  const match = /^(-?)(\d+)$/.exec(text.trim());
  if (!match) return `${text} ${currency}`;
  const exponent = NO_MINOR_UNIT.has(currency) ? 0 : 2;
  const digits = match[2].padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = exponent ? `.${digits.slice(digits.length - exponent)}` : '';
  return `${match[1]}${group(whole)}${fraction} ${currency}`;
}

const DATE = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** An RFC 3339 instant as a date in the reader's locale and time zone. */
export function formatDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE.format(date);
}

/** An RFC 3339 instant as a date and time in the reader's locale and time zone. */
export function formatDateTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

/**
 * A duration as the server writes it (humantime: "7 days", "3d", "12h 30m") in milliseconds,
 * or null when it cannot be read.
 */
export function parseDuration(text) {
  if (!text) return null;
  const units = { s: 1e3, sec: 1e3, second: 1e3, m: 6e4, min: 6e4, minute: 6e4, h: 36e5, hr: 36e5, hour: 36e5, d: 864e5, day: 864e5, w: 6048e5, week: 6048e5, month: 2630016e3, M: 2630016e3, y: 31557600e3, year: 31557600e3 };
  let total = 0;
  let found = false;
  for (const [, count, unit] of String(text).matchAll(/(\d+)\s*([a-zA-Z]+)/g)) {
    const key = unit === 'M' ? 'M' : unit.toLowerCase().replace(/s$/, '');
    if (!(key in units)) return null;
    total += Number(count) * units[key];
    found = true;
  }
  return found ? total : null;
}

/** Words for the server's enum values: "DAILY_FREE" -> "Daily free". */
export function words(value) {
  if (!value) return '';
  const text = String(value).toLowerCase().replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
