// Admin log: what operators did (`adminActions`), newest first and paged: when, who (the admin
// token's subject), which mutation, on which account, with its arguments; filterable by subject.
import { clear, formatDateTime, h } from '../../../portal/js/dom.js';
import { pagedList } from '../../../portal/js/pager.js';
import { accountHref } from './accounts.js';
import { field, table } from '../ui.js';

const PAGE = 20;

export async function render(root, app) {
  const subject = h('input', { id: 'log-subject', name: 'subject', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '128' });
  const form = h(
    'form',
    { class: 'filters', id: 'log-filter', 'aria-label': 'Filter the admin log' },
    field('Operator (subject)', subject),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button' }, 'Apply'), h('button', { type: 'reset', class: 'button button-quiet' }, 'Clear')),
  );
  let filter = null;
  const list = pagedList({
    name: 'Admin log',
    pageSize: PAGE,
    empty: 'No actions.',
    fetch: async (args) => (await app.gql('ConsoleAdminActions', { subject: filter, ...args })).adminActions,
    show: (nodes) =>
      table(
        'Admin actions',
        ['When', 'Operator', 'Action', 'Account', 'Arguments'],
        nodes.map((a) => ({
          attrs: { 'data-action': a.id },
          cells: [formatDateTime(a.at), a.subject, h('code', {}, a.action), a.accountId ? h('a', { href: accountHref(a.accountId) }, a.accountId) : '', h('code', { class: 'arguments' }, a.arguments)],
        })),
      ),
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filter = subject.value.trim() || null;
    list.reset();
  });
  form.addEventListener('reset', () =>
    setTimeout(() => {
      filter = null;
      list.reset();
    }),
  );
  clear(root).append(h('h1', {}, 'Admin log'), h('section', { class: 'card' }, form), h('section', { class: 'card', id: 'admin-log' }, list.element));
  await list.reset();
}
