// Ledger audit: starts the whole ledger's audit (`startAudit`), which the workers run in the
// background (never inside a request), and shows the recent runs (`auditRuns`): status, what
// was counted, the problems found. A run still queued or running is looked at again every few
// seconds while this page is open.
import { clear, formatDateTime, h } from '../../../portal/js/dom.js';
import { act, outcome, statusTag, table } from '../ui.js';

const POLL_MS = 3_000;

function problems(run) {
  if (run.error) return h('span', { class: 'last-error' }, run.error);
  if (!run.problems.length) return run.status === 'CLEAN' ? 'None' : '';
  return h('details', { class: 'problems' }, h('summary', {}, `${run.problems.length} problem(s)`), h('ul', {}, ...run.problems.map((p) => h('li', {}, p))));
}

export async function render(root, app) {
  const line = outcome('audit-run-outcome');
  const box = h('div', { id: 'audit-runs-list' });
  let timer = null;

  async function load() {
    clearTimeout(timer);
    if (!root.isConnected && box.dataset.loaded) return;
    const runs = (await app.gql('ConsoleAuditRuns')).auditRuns;
    box.dataset.loaded = String(Number(box.dataset.loaded || 0) + 1);
    clear(box).append(
      runs.length
        ? table(
            'Audit runs',
            ['Run', 'Status', 'Requested', 'By', 'Finished', ['Accounts', { num: true }], ['Lots', { num: true }], ['Entries', { num: true }], 'Problems'],
            runs.map((r) => ({
              attrs: { 'data-run': r.id, 'data-status': r.status },
              cells: [r.id, statusTag(r.status), formatDateTime(r.requestedAt), r.requestedBy || '', formatDateTime(r.finishedAt), r.accounts == null ? '' : String(r.accounts), r.lots == null ? '' : String(r.lots), r.entries == null ? '' : String(r.entries), problems(r)],
            })),
          )
        : h('p', { class: 'empty' }, 'No audit has run yet.'),
    );
    if (runs.some((r) => r.status === 'QUEUED' || r.status === 'RUNNING')) {
      timer = setTimeout(() => {
        if (root.isConnected) load().catch(() => {});
      }, POLL_MS);
    }
  }

  const button = h('button', { type: 'button', class: 'button', id: 'start-audit' }, 'Start the ledger audit');
  button.addEventListener('click', () =>
    act(app, button, line, async () => {
      const run = (await app.gql('ConsoleStartAudit')).startAudit;
      await load();
      return `Audit ${run.id} queued: the workers run it in the background.`;
    }),
  );
  await load();
  clear(root).append(
    h('h1', {}, 'Ledger audit'),
    h(
      'section',
      { class: 'card' },
      h('p', {}, 'Checks every account’s lots, journal and cached balance against each other. It runs as a background job; the result shows below.'),
      button,
      line,
    ),
    h('section', { class: 'card', id: 'audit-runs', 'aria-labelledby': 'audit-runs-title' }, h('h2', { id: 'audit-runs-title' }, 'Recent runs'), box),
  );
}
