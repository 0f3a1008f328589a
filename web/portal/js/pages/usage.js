// Usage (programs that meter usage): a month's total, deducted and uncollected; what each
// resource came to, as a chart; each container's lines on a chosen day with its tier and add-on;
// the month's AI uses a page at a time (the model shown for Chat only, as the server gives it).
//
// Every figure is the server's string: nothing is summed here. The current month and day are
// the server's (`program.now`, on a test clock too), not the browser's.
import { h, clear, formatCredits, formatDateTime } from '../dom.js';
import { barChart, scrollBox } from '../chart.js';
import { pagedList } from '../pager.js';

const MONTHS_BACK = 12;
const AI_PAGE = 10;

const RESOURCES = { CONTAINER: 'Containers', ADDON: 'Add-ons', STORAGE: 'Storage', TRAFFIC: 'Traffic', AI: 'AI' };
const LINE_NAMES = { CONTAINER: 'Running time', ADDON: 'Code Supporter add-on', STORAGE: 'Storage over quota', TRAFFIC: 'Traffic over allowance', AI: 'AI use' };
const AI_KINDS = { CHAT: 'Chat', AI_SUPPORTER: 'AI Supporter', SNAP: 'Snap' };

/** "2026-11" -> "2026-10" (integer arithmetic on the string: no time zone involved). */
function previousMonth(month) {
  const [year, number] = month.split('-').map(Number);
  return number === 1 ? `${year - 1}-12` : `${year}-${String(number - 1).padStart(2, '0')}`;
}

function monthName(month) {
  const [year, number] = month.split('-').map(Number);
  return new Date(Date.UTC(year, number - 1, 1)).toLocaleString('en', { month: 'long', year: 'numeric', timeZone: 'UTC' });
}

function daysIn(month) {
  const [year, number] = month.split('-').map(Number);
  return new Date(Date.UTC(year, number, 0)).getUTCDate();
}

/** Whole seconds as "1 h 30 min", "45 s". */
function duration(secondsText) {
  const seconds = Math.round(Number(secondsText));
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const parts = [];
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (rest || !parts.length) parts.push(`${rest} s`);
  return parts.join(' ');
}

/** A usage line's quantity in its unit, readable. */
export function quantity(text, unit) {
  switch (unit) {
    case 'SECOND':
      return duration(text);
    case 'GB_SECOND':
      return `${(Number(text) / 3600).toLocaleString('en', { maximumFractionDigits: 3 })} GB·h`;
    case 'BYTE':
      return `${(Number(text) / 1e9).toLocaleString('en', { maximumFractionDigits: 3 })} GB`;
    case 'TOKEN':
      return `${Number(text).toLocaleString('en')} tokens`;
    case 'USE':
      return text === '1' ? '1 use' : `${text} uses`;
    default:
      return text;
  }
}

function figure(label, value, key) {
  return h('div', { class: 'figure', 'data-figure': key }, h('dt', {}, label), h('dd', {}, formatCredits(value)));
}


export async function render(root, app) {
  clear(root);
  root.append(h('h1', {}, 'Usage'));
  if (app.program && app.program.metering === false) {
    root.append(h('p', {}, 'This program does not meter usage.'));
    return;
  }
  const monthSelect = h('select', { id: 'usage-month', name: 'month' });
  const summary = h('section', { class: 'card', 'aria-labelledby': 'usage-summary-title' });
  const resources = h('section', { class: 'card', id: 'usage-resources' });
  const daySelect = h('select', { id: 'usage-day', name: 'day' });
  const dayBody = h('div', { class: 'usage-day', 'aria-live': 'polite' });
  const containersCard = h(
    'section',
    { class: 'card', id: 'usage-containers' },
    h('h2', {}, 'Container logs'),
    h('div', { class: 'field' }, h('label', { for: 'usage-day' }, 'Day'), daySelect),
    // A usage line carries no tier: the tier shown is the container's now (Account.containers).
    h('p', { class: 'muted' }, "Each container's lines that day (UTC), with its tier now."),
    dayBody,
  );
  let month = null;
  let containers = new Map();
  const aiList = pagedList({
    name: 'AI uses',
    pageSize: AI_PAGE,
    empty: 'No AI uses this month.',
    fetch: async (args) => (await app.gql('PortalUsageAiLogs', { month, ...args })).me.usage.aiLogs,
    show: (nodes) =>
      scrollBox(
        'AI uses',
        h(
          'table',
          { class: 'data ai-logs' },
          h('caption', { class: 'visually-hidden' }, 'AI uses'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'When'),
              h('th', { scope: 'col' }, 'Type'),
              h('th', { scope: 'col' }, 'Container'),
              h('th', { scope: 'col' }, 'Model'),
              h('th', { scope: 'col', class: 'num' }, 'Used'),
              h('th', { scope: 'col', class: 'num' }, 'Credits'),
            ),
          ),
          h(
            'tbody',
            {},
            ...nodes.map((line) =>
              h(
                'tr',
                {},
                h('td', {}, formatDateTime(line.startedAt)),
                h('td', {}, AI_KINDS[line.kind] || line.kind || ''),
                h('td', {}, line.containerId || '—'),
                // The server gives the model for Chat only; anything else shows none.
                h('td', {}, line.kind === 'CHAT' && line.model ? line.model : '—'),
                h('td', { class: 'num' }, quantity(line.quantity, line.unit)),
                h('td', { class: 'num' }, formatCredits(line.amount)),
              ),
            ),
          ),
        ),
      ),
  });
  const aiCard = h('section', { class: 'card', id: 'usage-ai' }, h('h2', {}, 'AI uses'), aiList.element);
  root.append(
    h('div', { class: 'field month-picker' }, h('label', { for: 'usage-month' }, 'Month'), monthSelect),
    summary,
    resources,
    containersCard,
    aiCard,
  );

  async function loadDay(day) {
    clear(dayBody);
    dayBody.setAttribute('aria-busy', 'true');
    try {
      const data = await app.gql('PortalUsageContainerDay', { month, day });
      const lines = data.me.usage.containerDay;
      if (!lines.length) {
        dayBody.append(h('p', { class: 'empty' }, 'No container usage on this day.'));
        return;
      }
      const groups = new Map();
      for (const line of lines) {
        const key = line.containerId ?? '';
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(line);
      }
      for (const [containerId, group] of groups) {
        const known = containers.get(containerId);
        const addOn = group.some((line) => line.resource === 'ADDON');
        const heading = containerId
          ? h(
              'h3',
              {},
              containerId,
              h('span', { class: 'tag', 'data-tier': known ? known.tier : '' }, known ? `tier ${known.tier}` : 'tier unknown'),
              addOn ? h('span', { class: 'tag addon' }, 'Code Supporter') : '',
            )
          : h('h3', {}, 'All containers');
        dayBody.append(
          h(
            'div',
            { class: 'container-log', 'data-container': containerId },
            heading,
            scrollBox(
              `${containerId || 'All containers'} on ${day}`,
              h(
                'table',
                { class: 'data' },
                h('caption', { class: 'visually-hidden' }, `${containerId || 'All containers'} on ${day}`),
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    h('th', { scope: 'col' }, 'What'),
                    h('th', { scope: 'col', class: 'num' }, 'Used'),
                    h('th', { scope: 'col', class: 'num' }, 'Credits'),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  ...group.map((line) =>
                    h(
                      'tr',
                      { 'data-resource': line.resource },
                      h('td', {}, LINE_NAMES[line.resource] || line.resource),
                      h('td', { class: 'num' }, quantity(line.quantity, line.unit)),
                      h('td', { class: 'num' }, formatCredits(line.amount)),
                    ),
                  ),
                ),
              ),
            ),
          ),
        );
      }
    } catch (error) {
      dayBody.append(h('p', { class: 'error', role: 'alert' }, error.message));
    } finally {
      dayBody.removeAttribute('aria-busy');
      dayBody.dataset.loaded = day;
    }
  }

  async function loadMonth(wanted) {
    summary.setAttribute('aria-busy', 'true');
    let data;
    try {
      data = await app.gql('PortalUsageMonth', { month: wanted });
    } catch (error) {
      clear(summary);
      summary.append(h('p', { class: 'error', role: 'alert' }, error.message));
      summary.removeAttribute('aria-busy');
      return;
    }
    const report = data.me.usage;
    month = report.month;
    containers = new Map(data.me.containers.map((c) => [c.containerId, c]));
    const today = data.program.now.slice(0, 10);
    const currentMonth = today.slice(0, 7);
    if (!monthSelect.options.length) {
      let option = currentMonth;
      for (let i = 0; i <= MONTHS_BACK; i += 1) {
        monthSelect.append(h('option', { value: option }, monthName(option)));
        option = previousMonth(option);
      }
    }
    monthSelect.value = month;

    clear(summary);
    summary.append(
      h('h2', { id: 'usage-summary-title' }, monthName(month)),
      h(
        'dl',
        { class: 'figures' },
        figure('Total', report.total, 'total'),
        figure('Deducted', report.deducted, 'deducted'),
        figure('Uncollected', report.uncollected, 'uncollected'),
      ),
    );
    if (report.uncollected !== '0') {
      summary.append(h('p', { class: 'note' }, 'Uncollected usage could not be taken from your credits when it was charged.'));
    }
    summary.removeAttribute('aria-busy');

    clear(resources);
    resources.append(
      h('h2', {}, 'By resource'),
      barChart({
        title: `Usage by resource, ${monthName(month)}, in credits`,
        caption: 'Credits per resource',
        items: report.resources.map((r) => ({ label: RESOURCES[r.resource] || r.resource, value: r.amount, shown: formatCredits(r.amount) })),
      }),
    );

    clear(daySelect);
    const last = month === currentMonth ? Number(today.slice(8, 10)) : daysIn(month);
    for (let day = last; day >= 1; day -= 1) {
      const value = `${month}-${String(day).padStart(2, '0')}`;
      daySelect.append(h('option', { value }, value));
    }
    await Promise.all([loadDay(daySelect.value), aiList.reset()]);
    root.dataset.month = month;
  }

  monthSelect.addEventListener('change', () => loadMonth(monthSelect.value));
  daySelect.addEventListener('change', () => loadDay(daySelect.value));
  await loadMonth(null);
}
