// History: the account's journal, newest first, with filters (kind, feature, dates) and paging
// both ways with the server's opaque cursors. A reason is whatever a backend or an admin wrote:
// it is shown as text (a text node), so `<b>x</b>` shows those characters.
import { h, clear, formatCredits, formatDateTime } from '../dom.js';
import { pagedList } from '../pager.js';

const PAGE = 10;

export const KINDS = {
  GRANT: 'Granted',
  SPEND: 'Spent',
  HOLD: 'Held',
  RELEASE: 'Released',
  REFUND: 'Refunded',
  EXPIRE: 'Expired',
  REVOKE: 'Revoked',
  ADJUST: 'Adjusted',
  TRANSFER: 'Transferred',
  ROLLOVER: 'Rolled over',
  VOID: 'Voided',
  EXPIRY_CHANGE: 'Expiry changed',
  GIFT_SENT: 'Gift sent',
  GIFT_RECEIVED: 'Gift received',
};

/**
 * The instant a date picked in the form starts, in the reader's time zone (the one the entries'
 * times are shown in); `days` later for an inclusive "to" date (`until` is exclusive).
 */
function startOf(date, days = 0) {
  const [year, month, day] = date.split('-').map(Number);
  return new Date(year, month - 1, day + days).toISOString();
}

/** The filter the form describes, or null for none. */
function filterOf(form) {
  const filter = {};
  const kind = form.elements.kind.value;
  const feature = form.elements.feature.value.trim();
  const from = form.elements.from.value;
  const to = form.elements.to.value;
  if (kind) filter.kinds = [kind];
  if (feature) filter.feature = feature;
  if (from) filter.from = startOf(from);
  if (to) filter.until = startOf(to, 1);
  return Object.keys(filter).length ? filter : null;
}

/** One journal entry; `extra` adds tags to its line of details (the console's operator). */
export function entry(node, extra = []) {
  const negative = node.amount.startsWith('-');
  const details = [];
  if (node.feature) details.push(h('span', { class: 'tag' }, node.feature));
  if (node.model) details.push(h('span', { class: 'tag' }, node.model));
  return h(
    'li',
    { class: 'entry', 'data-sequence': node.sequence, 'data-kind': node.kind },
    h(
      'div',
      { class: 'entry-head' },
      h('span', { class: `kind kind-${node.kind.toLowerCase()}` }, KINDS[node.kind] || node.kind),
      h('span', { class: negative ? 'amount negative' : 'amount positive' }, negative ? formatCredits(node.amount) : `+${formatCredits(node.amount)}`),
    ),
    // Text, never markup: whatever the reason holds is shown as characters.
    node.reason ? h('p', { class: 'reason' }, node.reason) : '',
    h('div', { class: 'entry-meta' }, h('time', { datetime: node.effectiveAt }, formatDateTime(node.effectiveAt)), ...details, ...extra),
  );
}

export async function render(root, app) {
  clear(root);
  const kind = h('select', { id: 'history-kind', name: 'kind' }, h('option', { value: '' }, 'Any kind'));
  for (const [value, label] of Object.entries(KINDS)) kind.append(h('option', { value }, label));
  const form = h(
    'form',
    { class: 'filters', id: 'history-filters', 'aria-label': 'Filter the history' },
    h('div', { class: 'field' }, h('label', { for: 'history-kind' }, 'Kind'), kind),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'history-feature' }, 'Feature'),
      h('input', { id: 'history-feature', name: 'feature', type: 'text', maxlength: '100', autocomplete: 'off' }),
    ),
    h('div', { class: 'field' }, h('label', { for: 'history-from' }, 'From'), h('input', { id: 'history-from', name: 'from', type: 'date' })),
    h('div', { class: 'field' }, h('label', { for: 'history-to' }, 'To'), h('input', { id: 'history-to', name: 'to', type: 'date' })),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'button' }, 'Apply'),
      h('button', { type: 'reset', class: 'button button-quiet' }, 'Clear'),
    ),
  );
  let filter = null;
  const list = pagedList({
    name: 'History',
    pageSize: PAGE,
    empty: 'No entries match.',
    fetch: async (args) => {
      // The count reads every matching entry: asked for on a first page only.
      const withCount = args.after == null && args.before == null;
      return (await app.gql('PortalHistory', { filter, withCount, ...args })).me.history;
    },
    show: (nodes) => h('ol', { class: 'entries' }, ...nodes.map((node) => entry(node))),
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filter = filterOf(form);
    list.reset();
  });
  form.addEventListener('reset', () => {
    // After the browser has cleared the fields.
    setTimeout(() => {
      filter = null;
      list.reset();
    });
  });
  root.append(h('h1', {}, 'History'), h('section', { class: 'card' }, form), h('section', { class: 'card', id: 'history-list' }, list.element));
  await list.reset();
}
