// Market (programs with one): each workload's rate now (average, lowest and highest ask,
// providers), the suggested bid, and the 5-minute history as a chart; then the user's jobs a page
// at a time.
//
// Which workloads: the features of the program's catalog (`program.catalog`), in its order, then
// any other workload the user's own jobs ran; any other can be looked up by name.
import { h, clear, formatCredits, formatDateTime } from '../dom.js';
import { lineChart } from '../chart.js';
import { pagedList } from '../pager.js';

const HISTORY = 12;
const JOBS_PAGE = 10;
/** How many jobs are read to find the workloads the user uses. */
const WORKLOAD_SCAN = 50;

const STATUS = { RUNNING: 'Running', COMPLETED: 'Completed', FAILED: 'Failed', REJECTED: 'Rejected' };
const CODES = {
  ALL_BUSY: 'every provider within the budget is busy',
  BID_TOO_LOW: 'the bid is under every available price',
  DEADLINE: 'it passed its deadline',
  FAILED: 'the provider reported a failure',
  INSUFFICIENT_CREDITS: 'not enough credits',
  NO_PROVIDER: 'no provider offers this workload',
};

/** "2026-12-03T05:25:00Z" -> "05:25" (UTC, as the marks are). */
function clockTime(iso) {
  return `${iso.slice(11, 16)}`;
}

function workloadCard(rates) {
  const card = h('section', { class: 'card workload', 'data-workload': rates.workload }, h('h2', {}, rates.workload));
  if (rates.now) {
    card.append(
      h(
        'dl',
        { class: 'figures' },
        h('div', { class: 'figure', 'data-figure': 'average' }, h('dt', {}, 'Average now'), h('dd', {}, formatCredits(rates.now.average))),
        h('div', { class: 'figure', 'data-figure': 'range' }, h('dt', {}, 'Lowest – highest'), h('dd', {}, `${formatCredits(rates.now.min)} – ${formatCredits(rates.now.max)}`)),
        h('div', { class: 'figure', 'data-figure': 'providers' }, h('dt', {}, 'Providers'), h('dd', {}, String(rates.now.providers))),
        h('div', { class: 'figure', 'data-figure': 'suggested' }, h('dt', {}, 'Suggested bid'), h('dd', {}, rates.suggestedBid ? formatCredits(rates.suggestedBid) : '—')),
      ),
    );
  } else {
    card.append(h('p', { class: 'note' }, 'No provider asks a price for this workload now.'));
  }
  // The server lists snapshots newest first; the chart reads left to right, oldest first.
  const points = rates.history
    .slice()
    .reverse()
    .map((snapshot) => ({
      at: snapshot.at,
      label: clockTime(snapshot.at),
      value: snapshot.rate.average,
      low: snapshot.rate.min,
      high: snapshot.rate.max,
      providers: snapshot.rate.providers,
    }));
  if (points.length) {
    card.append(
      lineChart({
        title: `${rates.workload}: average rate every 5 minutes, in credits, times in UTC`,
        caption: `The last ${HISTORY} marks, every 5 minutes (UTC): the average, and the lowest to highest ask shaded`,
        points,
        columns: [
          { heading: 'Average', cell: (p) => formatCredits(p.value) },
          { heading: 'Lowest', cell: (p) => formatCredits(p.low) },
          { heading: 'Highest', cell: (p) => formatCredits(p.high) },
          { heading: 'Providers', cell: (p) => String(p.providers) },
        ],
      }),
    );
  } else {
    card.append(h('p', { class: 'note' }, 'No history yet: rates are recorded every 5 minutes.'));
  }
  return card;
}

function jobsTable(nodes) {
  return h(
    'ol',
    { class: 'entries jobs' },
    ...nodes.map((job) =>
      h(
        'li',
        { class: 'entry', 'data-job': job.jobId, 'data-status': job.status },
        h(
          'div',
          { class: 'entry-head' },
          h('span', { class: `kind status-${job.status.toLowerCase()}` }, STATUS[job.status] || job.status),
          h('span', { class: 'amount' }, job.price ? `${formatCredits(job.price)} credits` : job.budget ? `budget ${formatCredits(job.budget)}` : '—'),
        ),
        // The job's input is the user's own text: shown as text.
        h('p', { class: 'reason job-input' }, job.input),
        h(
          'div',
          { class: 'entry-meta' },
          h('span', { class: 'tag' }, job.workload),
          job.surge ? h('span', { class: 'tag' }, 'surge') : '',
          job.code ? h('span', { class: 'tag' }, CODES[job.code] || job.code) : '',
          h('span', {}, `deadline ${formatDateTime(job.deadline)}`),
          h('span', { class: 'job-id' }, `#${job.jobId}`),
        ),
      ),
    ),
  );
}

export async function render(root, app) {
  clear(root);
  root.append(h('h1', {}, 'Market'));
  if (app.program && app.program.market === false) {
    root.append(h('p', {}, 'This program has no market.'));
    return;
  }
  const rates = h('div', { class: 'workloads', id: 'market-rates', 'aria-live': 'polite' });
  const shown = new Set();
  const lookupInput = h('input', { id: 'market-workload', name: 'workload', type: 'text', maxlength: '100', autocomplete: 'off' });
  const lookupError = h('p', { class: 'error', role: 'alert' });
  lookupError.hidden = true;
  const lookup = h(
    'form',
    { class: 'filters lookup', id: 'market-lookup', 'aria-label': 'Look up a workload' },
    h('div', { class: 'field' }, h('label', { for: 'market-workload' }, 'Workload'), lookupInput),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button' }, 'Show its rate')),
    lookupError,
  );

  async function show(workload) {
    if (shown.has(workload)) return;
    const data = await app.gql('PortalMarketRates', { workload, history: HISTORY });
    if (shown.has(workload)) return;
    shown.add(workload);
    rates.append(workloadCard(data.marketRates));
  }

  lookup.addEventListener('submit', async (event) => {
    event.preventDefault();
    const workload = lookupInput.value.trim();
    if (!workload) return;
    lookupError.hidden = true;
    try {
      await show(workload);
      lookupInput.value = '';
    } catch (error) {
      lookupError.textContent = error.message;
      lookupError.hidden = false;
    }
  });

  const jobs = pagedList({
    name: 'Jobs',
    pageSize: JOBS_PAGE,
    empty: 'You have not submitted any jobs.',
    fetch: async (args) => (await app.gql('PortalMarketJobs', args)).me.jobs,
    show: jobsTable,
  });

  root.append(
    h('section', { class: 'card' }, h('h2', {}, 'Rates'), h('p', { class: 'muted' }, 'The program\'s workloads and those of your jobs; look up any other by name.'), lookup),
    rates,
    h('section', { class: 'card', id: 'market-jobs' }, h('h2', {}, 'Your jobs'), jobs.element),
  );

  // The catalog's workloads, then those the user's recent jobs ran (most recent first).
  try {
    const recent = (await app.gql('PortalMarketJobs', { first: WORKLOAD_SCAN })).me.jobs.nodes;
    const catalog = ((app.program && app.program.catalog) || []).map((item) => item.feature);
    const workloads = [...new Set([...catalog, ...recent.map((job) => job.workload)])];
    await Promise.all(workloads.map(show));
    // Promise.all appends in completion order: put the cards back in the jobs' order.
    for (const workload of workloads) {
      const card = [...rates.children].find((c) => c.dataset.workload === workload);
      if (card) rates.append(card);
    }
  } catch (error) {
    rates.append(h('p', { class: 'error', role: 'alert' }, error.message));
  }
  await jobs.reset();
  root.dataset.ready = 'true';
}
