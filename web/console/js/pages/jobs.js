// Jobs: every scheduled job (`scheduledJobs`) with its schedule, next start and latest period
// (status, items, attempts, last error), a "Run now" per job (`runJob`: the workers'
// exactly-once rules apply, so a period already done is not redone), and one job's recent
// periods (`jobRuns`) at #/jobs/NAME.
import { clear, formatDateTime, h, words } from '../../../portal/js/dom.js';
import { act, outcome, statusTag, table } from '../ui.js';

function runsTable(caption, runs) {
  return table(
    caption,
    ['Period', 'Status', ['Items', { num: true }], ['Batches', { num: true }], ['Attempts', { num: true }], 'Started', 'Finished', 'Last error'],
    runs.map((r) => ({
      attrs: { 'data-period': r.period, 'data-status': r.status },
      cells: [r.period, statusTag(r.status), String(r.items), String(r.batches), String(r.attempts), formatDateTime(r.startedAt), formatDateTime(r.finishedAt), r.lastError ? h('span', { class: 'last-error' }, r.lastError) : ''],
    })),
  );
}

async function detail(app, job, box) {
  const runs = (await app.gql('ConsoleJobRuns', { job })).jobRuns;
  clear(box).append(
    h('h2', { id: 'job-runs-title' }, `${words(job)}: recent periods`),
    runs.length ? runsTable(`Recent periods of ${words(job)}`, runs) : h('p', { class: 'empty' }, 'No periods: a continuous job has none, and a periodic one that never ran neither.'),
  );
}

export async function render(root, app) {
  const line = outcome('run-outcome');
  const runsBox = h('section', { class: 'card', id: 'job-runs', 'aria-labelledby': 'job-runs-title', hidden: !app.param });
  const listBox = h('div');

  async function load() {
    const jobs = (await app.gql('ConsoleScheduledJobs')).scheduledJobs;
    clear(listBox).append(
      table(
        'Scheduled jobs',
        ['Job', 'Cadence', 'Schedule', 'Next start', 'Latest period', 'Status', ['Items', { num: true }], ['Attempts', { num: true }], 'Last error', ''],
        jobs.map((j) => {
          const run = j.latestRun;
          const button = h('button', { type: 'button', class: 'button button-quiet', 'data-run': j.name, 'aria-label': `Run now: ${words(j.name)}` }, 'Run now');
          button.addEventListener('click', () =>
            act(app, button, line, async () => {
              let outcomeText;
              try {
                const r = (await app.gql('ConsoleRunJob', { job: j.name })).runJob;
                outcomeText = `${words(r.job)} ran: ${r.items} item(s)${r.periods.length ? `, periods ${r.periods.join(', ')}` : ''}.`;
              } finally {
                // A failed run is recorded on its period: show it either way.
                await load();
                if (app.param === j.name) await detail(app, j.name, runsBox);
              }
              return outcomeText;
            }),
          );
          return {
            attrs: { 'data-job': j.name, class: app.param === j.name ? 'selected' : null },
            cells: [
              h('a', { href: `#/jobs/${j.name}`, 'aria-current': app.param === j.name ? 'true' : null }, words(j.name)),
              words(j.cadence),
              h('code', {}, j.schedule),
              formatDateTime(j.nextStart),
              run ? run.period : '',
              run ? statusTag(run.status) : '',
              run ? String(run.items) : '',
              run ? String(run.attempts) : '',
              run && run.lastError ? h('span', { class: 'last-error' }, run.lastError) : '',
              button,
            ],
          };
        }),
      ),
    );
  }

  await load();
  if (app.param) await detail(app, app.param, runsBox);
  clear(root).append(h('h1', {}, 'Jobs'), h('section', { class: 'card', id: 'jobs' }, listBox, line), runsBox);
}
