// The portal's Usage, History and Market pages in Chromium, against the real server, with the
// network cut off from everything but it. The script only drives the pages and reads what they
// show; the Rust test (tests/portal_pages.rs) made the data through the API and compares.
//
// Inputs: argv[2] the server's base URL; URL the portal link (…/portal#token=…); MODE `metering` (Usage, then
// History) or `market` (Market); for `metering`: OTHER_MONTH a month to pick, HISTORY_FILTERS a
// JSON list of {name, kind, feature, from, to}; SCREENSHOTS a folder to save
// portal-{usage,history,market}.png in (not set: none).
import path from 'node:path';
import { axe, loadCount, loadedAfter, openPage, result, run, step, WAIT_MS } from './lib.mjs';


const base = process.argv[2];
const { URL: PORTAL_URL, MODE, OTHER_MONTH, HISTORY_FILTERS, SCREENSHOTS } = process.env;

async function go(page, hash) {
  await page.evaluate((hash) => {
    window.location.hash = hash;
  }, hash);
}

/** Clicks the list's Newer or Older button and waits for the page it loads. */
async function turn(page, name, which) {
  const before = await loadCount(page, name);
  await page.click(`.paged[data-list="${name}"] button[data-page="${which}"]`);
  await loadedAfter(page, name, before);
}

async function pager(page, name) {
  return page.evaluate((name) => {
    const list = document.querySelector(`.paged[data-list="${name}"]`);
    return {
      newer: !list.querySelector('button[data-page="newer"]').disabled,
      older: !list.querySelector('button[data-page="older"]').disabled,
      status: list.querySelector('.paged-status').textContent,
    };
  }, name);
}

/** What the page shows that a phone could not: wider than the viewport means sideways scroll. */
async function phoneFit(page) {
  return page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
}


async function shot(page, name) {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: path.join(SCREENSHOTS, `portal-${name}.png`), fullPage: true });
}

async function readCharts(page, scope) {
  return page.evaluate((scope) => {
    return [...document.querySelectorAll(`${scope} figure.chart`)].map((figure) => {
      const picture = figure.querySelector('svg');
      return {
        role: picture.getAttribute('role'),
        label: picture.getAttribute('aria-label'),
        bars: picture.querySelectorAll('rect.chart-bar').length,
        points: picture.querySelectorAll('circle.chart-point').length,
        line: picture.querySelectorAll('polyline.chart-line').length,
        rows: [...figure.querySelectorAll('table tbody tr')].map((tr) => [...tr.children].map((cell) => cell.textContent)),
        styled: figure.querySelectorAll('[style]').length,
      };
    });
  }, scope);
}

async function readUsage(page) {
  return page.evaluate(() => {
    const text = (selector) => document.querySelector(selector)?.textContent ?? null;
    return {
      month: document.querySelector('#usage-month').value,
      months: [...document.querySelectorAll('#usage-month option')].map((o) => o.value),
      total: text('[data-figure="total"] dd'),
      deducted: text('[data-figure="deducted"] dd'),
      uncollected: text('[data-figure="uncollected"] dd'),
      day: document.querySelector('#usage-day').value,
      containers: [...document.querySelectorAll('.container-log')].map((log) => ({
        container: log.dataset.container,
        tags: [...log.querySelectorAll('h3 .tag')].map((t) => t.textContent),
        rows: [...log.querySelectorAll('tbody tr')].map((tr) => [tr.dataset.resource, ...[...tr.children].map((c) => c.textContent)]),
      })),
      ai: [...document.querySelectorAll('.ai-logs tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent)),
    };
  });
}

async function usagePage(page) {
  await go(page, '#/usage');
  await page.waitForSelector('#usage-resources figure.chart', { timeout: WAIT_MS });
  await page.waitForSelector('.usage-day[data-loaded]', { timeout: WAIT_MS });
  await loadedAfter(page, 'AI uses', 0);
  const current = await readUsage(page);
  current.charts = await readCharts(page, '#usage-resources');
  current.aiPager = await pager(page, 'AI uses');
  current.axe = await axe(page);
  await shot(page, 'usage');
  step('usage');

  await turn(page, 'AI uses', 'older');
  const olderAi = { rows: (await readUsage(page)).ai, pager: await pager(page, 'AI uses') };
  await turn(page, 'AI uses', 'newer');
  const newerAgain = { rows: (await readUsage(page)).ai, pager: await pager(page, 'AI uses') };

  await page.selectOption('#usage-month', OTHER_MONTH);
  await page.waitForFunction((month) => document.querySelector('[data-month]')?.dataset.month === month, OTHER_MONTH, { timeout: WAIT_MS });
  const other = await readUsage(page);
  other.charts = await readCharts(page, '#usage-resources');
  return { current, olderAi, newerAgain, other };
}

async function historySequences(page) {
  return page.evaluate(() => [...document.querySelectorAll('#history-list .entry')].map((e) => e.dataset.sequence));
}

async function historyPage(page) {
  await go(page, '#/history');
  await loadedAfter(page, 'History', 0);
  const pages = [{ sequences: await historySequences(page), pager: await pager(page, 'History') }];
  const axeFound = await axe(page);
  await shot(page, 'history');
  await turn(page, 'History', 'older');
  pages.push({ sequences: await historySequences(page), pager: await pager(page, 'History') });
  await turn(page, 'History', 'older');
  pages.push({ sequences: await historySequences(page), pager: await pager(page, 'History') });
  await turn(page, 'History', 'newer');
  pages.push({ sequences: await historySequences(page), pager: await pager(page, 'History') });

  // Reasons as the page shows them, while the first pages are on screen.
  await turn(page, 'History', 'newer');
  const reasons = await page.evaluate(() =>
    [...document.querySelectorAll('#history-list .entry .reason')].map((p) => ({ text: p.textContent, elements: p.children.length })),
  );
  const injected = await page.evaluate(() => document.querySelectorAll('#history-list img, #history-list b, #history-list script').length);

  const filtered = {};
  for (const filter of JSON.parse(HISTORY_FILTERS || '[]')) {
    await page.click('#history-filters button[type="reset"]');
    await loadedAfter(page, 'History', await loadCount(page, 'History'));
    await page.selectOption('#history-kind', filter.kind || '');
    await page.fill('#history-feature', filter.feature || '');
    await page.fill('#history-from', filter.from || '');
    await page.fill('#history-to', filter.to || '');
    const before = await loadCount(page, 'History');
    await page.click('#history-filters button[type="submit"]');
    await loadedAfter(page, 'History', before);
    const first = await historySequences(page);
    const firstPager = await pager(page, 'History');
    let second = null;
    if (firstPager.older) {
      await turn(page, 'History', 'older');
      second = await historySequences(page);
    }
    filtered[filter.name] = { first, pager: firstPager, second };
  }
  return { pages, reasons, injected, filtered, axe: axeFound };
}

async function readMarket(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.workload')].map((card) => ({
      workload: card.dataset.workload,
      figures: Object.fromEntries([...card.querySelectorAll('.figure')].map((f) => [f.dataset.figure, f.querySelector('dd').textContent])),
    })),
  );
}

async function jobIds(page) {
  return page.evaluate(() => [...document.querySelectorAll('#market-jobs .entry')].map((e) => ({ id: e.dataset.job, status: e.dataset.status, input: e.querySelector('.job-input').textContent })));
}

async function marketPage(page) {
  await go(page, '#/market');
  await page.waitForSelector('[data-ready="true"]', { timeout: WAIT_MS });
  const cards = await readMarket(page);
  const charts = await readCharts(page, '#market-rates');
  const jobs = [{ jobs: await jobIds(page), pager: await pager(page, 'Jobs') }];
  const axeFound = await axe(page);
  await shot(page, 'market');
  await turn(page, 'Jobs', 'older');
  jobs.push({ jobs: await jobIds(page), pager: await pager(page, 'Jobs') });
  await turn(page, 'Jobs', 'newer');
  jobs.push({ jobs: await jobIds(page), pager: await pager(page, 'Jobs') });

  await page.fill('#market-workload', 'no-such-workload');
  await page.click('#market-lookup button[type="submit"]');
  await page.waitForSelector('#market-lookup .error:not([hidden])', { timeout: WAIT_MS });
  const refusal = await page.textContent('#market-lookup .error');
  return { cards, charts, jobs, refusal, axe: axeFound };
}

run(async () => {
  const { browser, page, requests, websockets, problems, foreign } = await openPage(base);
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss();
  });
  const response = await page.goto(PORTAL_URL, { waitUntil: 'load' });
  if (response.status() !== 200) throw new Error(`GET /portal answered ${response.status()}`);
  // The session takes the token out of the address at once.
  await page.waitForFunction(() => !window.location.hash.includes('token='), null, { timeout: WAIT_MS });
  step('opened');

  const seen = {};
  const hashes = [];
  if (MODE === 'metering') {
    seen.usage = await usagePage(page);
    step('usage-checked');
    seen.history = await historyPage(page);
    step('history-checked');
    hashes.push(['#/usage', '#usage-resources figure.chart'], ['#/history', '#history-list .paged[data-loaded]']);
  } else {
    seen.market = await marketPage(page);
    step('market-checked');
    hashes.push(['#/market', '[data-ready="true"] #market-jobs .paged[data-loaded]']);
  }

  // A phone: each page again at 390 x 844, none wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  seen.phone = {};
  for (const [hash, ready] of hashes) {
    await go(page, '#/overview');
    // Away first (the same hash again would not route), until none of these pages is left.
    await page.waitForFunction(() => !document.querySelector('#usage-resources, #history-list, #market-rates'), null, { timeout: WAIT_MS });
    await go(page, hash);
    await page.waitForSelector(ready, { timeout: WAIT_MS });
    await page.waitForFunction(() => ![...document.querySelectorAll('[aria-busy]')].length, null, { timeout: WAIT_MS });
    seen.phone[hash] = { ...(await phoneFit(page)), axe: await axe(page) };
  }

  await browser.close();
  result({ ...seen, dialogs, requests, websockets, problems, foreign: foreign() });
});
