// Statement: an account's month (docs/statements.md) as a printable page: opening and closing
// balance, grants by source, spends by feature, expiries, refunds, the other movements, every
// lot's month, and the digest a third party can check; "Download JSON" saves the statement's
// canonical document (what `credits statement verify` reads). Printing hides the navigation
// and the controls (pages.css, @media print).
import { h, clear, formatCredits, formatDate, formatDateTime } from '../dom.js';
import { KINDS } from './history.js';

/** "SOME_NAME" as "Some name". */
function label(name) {
  const words = name.toLowerCase().replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The month ("YYYY-MM") an RFC 3339 instant falls in, in UTC as statements are. */
function monthOf(iso) {
  return iso.slice(0, 7);
}

function row(name, amount, attrs = {}) {
  return h('tr', attrs, h('th', { scope: 'row' }, name), h('td', { class: 'num' }, formatCredits(amount)));
}

function section(title, rows, empty) {
  return h(
    'section',
    { class: 'statement-part' },
    h('h2', {}, title),
    rows.length ? h('table', { class: 'statement-table' }, h('tbody', {}, ...rows)) : h('p', { class: 'muted' }, empty),
  );
}

function show(statement, accountId) {
  const other = statement.movements.filter((m) => !['GRANT', 'SPEND', 'EXPIRE', 'REFUND'].includes(m.kind));
  const download = h('a', { class: 'button', id: 'statement-download', download: `statement-${accountId}-${statement.month}.json` }, 'Download JSON');
  download.href = URL.createObjectURL(new Blob([statement.json], { type: 'application/json' }));
  const print = h('button', { type: 'button', class: 'button button-quiet', id: 'statement-print' }, 'Print');
  print.addEventListener('click', () => window.print());
  const lots = statement.lots.map((lot) =>
    h(
      'tr',
      { 'data-lot': lot.id },
      h('td', {}, `#${lot.id}`),
      h('td', {}, label(lot.source)),
      h('td', {}, lot.expiresAt ? formatDate(lot.expiresAt) : 'Never'),
      ...['opening', 'creditsIn', 'creditsOut', 'expired', 'closing'].map((k) => h('td', { class: 'num' }, formatCredits(lot[k]))),
    ),
  );
  return h(
    'article',
    { class: 'card statement', id: 'statement', 'data-month': statement.month, 'data-complete': String(statement.complete) },
    h('header', { class: 'statement-head' }, h('h2', {}, `Statement ${statement.month}`), h('p', { class: 'muted' }, `Account ${accountId}`)),
    h(
      'p',
      { class: 'muted' },
      statement.complete
        ? `${formatDateTime(statement.from)} to ${formatDateTime(statement.to)} (UTC month)`
        : `In progress: ${formatDateTime(statement.from)} to ${formatDateTime(statement.asOf)}, not complete`,
    ),
    h(
      'table',
      { class: 'statement-table statement-summary' },
      h(
        'tbody',
        {},
        row('Opening balance', statement.opening, { id: 'statement-opening' }),
        row('Granted', statement.movements.find((m) => m.kind === 'GRANT')?.credits || '0'),
        // Exact: the SPEND movement as the server summed it, its sign dropped.
        row('Spent', (statement.movements.find((m) => m.kind === 'SPEND')?.credits || '0').replace(/^-/, '')),
        row('Expired', statement.expired, { id: 'statement-expired' }),
        row('Refunded', statement.refunded, { id: 'statement-refunded' }),
        row('Closing balance', statement.closing, { id: 'statement-closing', class: 'total' }),
      ),
    ),
    section('Grants by source', statement.grantsBySource.map((g) => row(label(g.source), g.credits, { 'data-source': g.source })), 'No grants this month.'),
    section(
      'Spends by feature',
      statement.spendsByFeature.map((s) => row(s.feature || 'Other', s.credits, { 'data-feature': s.feature || '' })),
      'No spends this month.',
    ),
    section('Other movements', other.map((m) => row(KINDS[m.kind] || label(m.kind), m.credits, { 'data-kind': m.kind })), 'None.'),
    h(
      'section',
      { class: 'statement-part' },
      h('h2', {}, 'Lots'),
      lots.length
        ? h(
            'table',
            { class: 'statement-table statement-lots' },
            h(
              'thead',
              {},
              h('tr', {}, ...['Lot', 'Source', 'Expires', 'Opening', 'In', 'Out', 'Expired', 'Closing'].map((t) => h('th', { scope: 'col' }, t))),
            ),
            h('tbody', {}, ...lots),
          )
        : h('p', { class: 'muted' }, 'No lots this month.'),
    ),
    h(
      'footer',
      { class: 'statement-digest' },
      h('p', {}, `${statement.entryCount} journal entries. SHA-256 digest (${statement.format}):`),
      h('code', { id: 'statement-digest' }, statement.digest),
    ),
    h('div', { class: 'actions no-print' }, download, print),
  );
}

export async function render(root, app) {
  clear(root);
  const current = monthOf(app.program.now);
  const input = h('input', { id: 'statement-month', name: 'month', type: 'month', max: current, value: current, required: true });
  const form = h(
    'form',
    { class: 'filters no-print', id: 'statement-form', 'aria-label': 'Choose a month' },
    h('div', { class: 'field' }, h('label', { for: 'statement-month' }, 'Month'), input),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button' }, 'Show')),
  );
  const result = h('div', { id: 'statement-result' });
  let objectUrl = null;
  const load = async () => {
    clear(result).append(h('p', { class: 'muted' }, 'Loading...'));
    try {
      const { statement } = (await app.gql('PortalStatement', { month: input.value })).me;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      const shown = show(statement, app.accountId);
      objectUrl = shown.querySelector('#statement-download').href;
      clear(result).append(shown);
    } catch (error) {
      clear(result).append(h('p', { class: 'error' }, error.message || String(error)));
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  root.append(h('h1', { class: 'no-print' }, 'Statement'), h('section', { class: 'card no-print' }, form), result);
  await load();
  return () => {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  };
}
