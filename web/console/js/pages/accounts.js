// Accounts: a search by id or its beginning (`accounts(search:)`, newest first, paged), each
// result linking to its account page (#/account/ID). The search is kept in the fragment's
// route (#/accounts/PREFIX), so Back returns to the same results.
import { clear, formatCredits, formatDate, h } from '../../../portal/js/dom.js';
import { pagedList } from '../../../portal/js/pager.js';
import { statusTag, table } from '../ui.js';

const PAGE = 20;

export function accountHref(id) {
  return `#/account/${encodeURIComponent(id)}`;
}

export async function render(root, app) {
  clear(root);
  const input = h('input', { id: 'account-search', name: 'search', type: 'search', maxlength: '128', autocomplete: 'off', spellcheck: 'false', required: true, value: app.param || '' });
  const form = h(
    'form',
    { class: 'filters', id: 'account-search-form', role: 'search', 'aria-label': 'Find accounts' },
    h('div', { class: 'field' }, h('label', { for: 'account-search' }, 'Account id or its beginning'), input),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button' }, 'Search')),
  );
  let search = app.param || '';
  const list = pagedList({
    name: 'Accounts',
    pageSize: PAGE,
    empty: 'No account id starts with that.',
    fetch: async (args) => (await app.gql('ConsoleAccounts', { search, ...args })).accounts,
    show: (nodes) =>
      table(
        'Accounts found',
        ['Account', 'Status', 'Plan', ['Balance', { num: true }], 'Verified', 'Created'],
        nodes.map((a) => ({
          attrs: { 'data-account': a.id },
          cells: [h('a', { href: accountHref(a.id) }, a.id), statusTag(a.status), a.plan, formatCredits(a.balance.total), a.identityVerified ? 'Yes' : 'No', formatDate(a.createdAt)],
        })),
      ),
  });
  const results = h('section', { class: 'card', id: 'account-results', 'aria-label': 'Results' }, search ? list.element : h('p', { class: 'muted' }, 'Type an account id, or the first characters of one.'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    search = value;
    // The route keeps the search; replacing it does not fire hashchange, so no re-render.
    history.replaceState(null, '', `${location.pathname}${location.search}#/accounts/${encodeURIComponent(value)}`);
    clear(results).append(list.element);
    list.reset();
  });
  root.append(h('h1', {}, 'Accounts'), h('section', { class: 'card' }, form), results);
  if (search) await list.reset();
}
