// Webhooks: the outbox (`outbox(status:)`), newest first and paged, filtered by status (the
// backlog, failed, delivered, or all), each event with its attempts, next attempt, last error
// and payload, and "Redeliver" (`redeliverEvent`: sent at once, under the same event id, so a
// receiver de-duplicates a second press).
import { clear, formatDateTime, h } from '../../../portal/js/dom.js';
import { pagedList } from '../../../portal/js/pager.js';
import { accountHref } from './accounts.js';
import { act, field, outcome, select, statusTag, table } from '../ui.js';

const PAGE = 20;

function payload(text) {
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // Shown as it is.
  }
  return h('details', { class: 'payload' }, h('summary', {}, 'Payload'), h('pre', {}, pretty));
}

export async function render(root, app) {
  const line = outcome('redeliver-outcome');
  const filter = select('outbox-status', 'status', ['PENDING', 'FAILED', 'DELIVERED'], 'FAILED', [['', 'All events']]);
  filter.options[1].textContent = 'Backlog (not delivered)';
  const list = pagedList({
    name: 'Outbox',
    pageSize: PAGE,
    empty: 'No events.',
    fetch: async (args) => (await app.gql('ConsoleOutbox', { status: filter.value || null, ...args })).outbox,
    show: (nodes) =>
      table(
        'Outbox events',
        ['Event', 'Topic', 'Account', 'Created', 'Status', ['Attempts', { num: true }], 'Next attempt', 'Last error', 'Payload', ''],
        nodes.map((e) => {
          const button = h('button', { type: 'button', class: 'button button-quiet', 'data-redeliver': e.id, 'aria-label': `Redeliver event ${e.eventId}` }, 'Redeliver');
          button.addEventListener('click', () =>
            act(app, button, line, async () => {
              const r = (await app.gql('ConsoleRedeliver', { id: e.id })).redeliverEvent;
              await list.load({ first: PAGE });
              return r.status === 'DELIVERED' ? `Event ${r.eventId} delivered.` : `Event ${r.eventId} failed again: ${r.lastError || 'no answer'}.`;
            }),
          );
          return {
            attrs: { 'data-event': e.id, 'data-status': e.status },
            cells: [
              e.eventId,
              e.topic,
              e.accountId ? h('a', { href: accountHref(e.accountId) }, e.accountId) : '',
              formatDateTime(e.createdAt),
              statusTag(e.status),
              String(e.attempts),
              e.deliveredAt ? `Delivered ${formatDateTime(e.deliveredAt)}` : formatDateTime(e.nextAttemptAt) || 'Now',
              e.lastError ? h('span', { class: 'last-error' }, e.lastError) : '',
              payload(e.payload),
              button,
            ],
          };
        }),
      ),
  });
  filter.addEventListener('change', () => list.reset());
  clear(root).append(
    h('h1', {}, 'Webhooks'),
    h('section', { class: 'card' }, h('form', { class: 'filters', id: 'outbox-filter', 'aria-label': 'Filter the outbox' }, field('Status', filter))),
    h('section', { class: 'card', id: 'outbox' }, list.element, line),
  );
  await list.reset();
}
