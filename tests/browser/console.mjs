// The operator console in Chromium, with the network cut off from everything but the server: an
// operator signs in (a console link's one-time code when LINK is given, else a pasted admin
// token), finds accounts by prefix, grants credits on one and sees the new history entry (with
// the operator's subject when the server records one), sees a failed webhook, waits for the Rust
// test to heal the receiver and redelivers it, sees a failed job run and its error, runs a job
// now, creates a coupon, starts the ledger audit when the server has it, reads the admin log;
// then tokens the server refuses and signing out; each page under axe-core and on a phone.
//
// Inputs: argv[2] the server's base URL; TOKEN an admin token to paste; LINK a console link
// (optional); BAD_TOKEN a token the server refuses; USER_TOKEN a user's token; SEARCH a prefix;
// ACCOUNT the account to grant to; PURCHASE a paid purchase of it to refund; EVENT the outbox id of a failed event; FAILED_JOB the job
// with a failed period; AUDIT "1" when the server has the ledger audit and admin log;
// CONSOLE_SCREENSHOTS a folder for docs/console-*.png (optional).
// Steps: "event-failed-seen" (the Rust test then heals the receiver and resumes the script with
// "healed"), "audit-queued" (with
// AUDIT: the Rust test then runs the audit job), then RESULT.
import { join } from 'node:path';
import { axe, loadCount as loads, loadedAfter as loaded, openPage, result, resumed, run, step, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const env = process.env;
const SHOTS = env.CONSOLE_SCREENSHOTS;

async function shoot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });
}

/** Goes to a route and waits until its page has rendered. */
async function go(page, hash, route) {
  await page.evaluate((hash) => {
    location.hash = hash;
  }, hash);
  await page.waitForFunction((route) => document.getElementById('page').dataset.page === route && !document.querySelector('#page > p.muted'), route, { timeout: WAIT_MS });
}

const cells = (page, selector) => page.evaluate((selector) => [...document.querySelectorAll(`${selector} td`)].map((td) => td.textContent.trim()), selector);

/** Waits for an outcome line to be filled, and returns its text and whether it is a success. */
async function outcomeOf(page, id) {
  await page.waitForSelector(`#${id}.outcome-ok, #${id}.outcome-error`, { timeout: WAIT_MS });
  return page.evaluate((id) => {
    const line = document.getElementById(id);
    return { text: line.textContent, ok: line.classList.contains('outcome-ok') };
  }, id);
}

async function signInWith(page, token) {
  await page.waitForSelector('#sign-in-form', { timeout: WAIT_MS });
  await page.fill('#sign-in-token', token);
  await page.click('#sign-in-form button[type="submit"]');
}

async function refusedWith(page, token) {
  await page.goto(new URL('/console', base).href, { waitUntil: 'load' });
  await signInWith(page, token);
  await page.waitForSelector('#sign-in-message', { timeout: WAIT_MS });
  return { message: await page.textContent('#sign-in-message'), stored: await page.evaluate(() => sessionStorage.getItem('credits.console.token')) };
}

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  const axeOf = {};
  const phone = {};

  // Signing in.
  const signIn = {};
  if (env.LINK) {
    const response = await page.goto(env.LINK, { waitUntil: 'load' });
    if (response.status() !== 200) throw new Error(`GET /console answered ${response.status()}`);
    signIn.addressBarAtOnce = page.url();
  } else {
    await page.goto(new URL('/console', base).href, { waitUntil: 'load' });
    await page.waitForSelector('#sign-in-form', { timeout: WAIT_MS });
    axeOf.signIn = await axe(page);
    await signInWith(page, env.TOKEN);
  }
  await page.waitForSelector('#sign-out', { timeout: WAIT_MS });
  await page.waitForFunction(() => document.getElementById('page').dataset.page === 'accounts', null, { timeout: WAIT_MS });
  signIn.addressBar = page.url();
  signIn.viewer = await page.textContent('#viewer-subject');
  signIn.stored = (await page.evaluate(() => sessionStorage.getItem('credits.console.token'))) !== null;
  signIn.localStorage = await page.evaluate(() => localStorage.length);
  signIn.cookies = await page.evaluate(() => document.cookie);

  // Accounts: a search by prefix.
  await page.fill('#account-search', env.SEARCH);
  await page.click('#account-search-form button[type="submit"]');
  await loaded(page, 'Accounts', 0);
  const found = await page.evaluate(() => [...document.querySelectorAll('tr[data-account]')].map((tr) => tr.dataset.account));
  axeOf.accounts = await axe(page);
  await shoot(page, 'accounts');

  // The account: grant credits, see the entry.
  await page.click(`tr[data-account="${env.ACCOUNT}"] a`);
  await page.waitForFunction(() => document.getElementById('page').dataset.page === 'account', null, { timeout: WAIT_MS });
  await loaded(page, 'History', 0);
  const historyLoads = await loads(page, 'History');
  await page.selectOption('#grant-source', 'EVENT');
  await page.selectOption('#grant-class', 'PROMOTIONAL');
  await page.fill('#grant-amount', '25');
  await page.fill('#grant-validity', '30 days');
  await page.fill('#grant-reason', 'Goodwill for the outage');
  await page.click('#grant-form button[type="submit"]');
  const grantOutcome = await outcomeOf(page, 'grant-outcome');
  await loaded(page, 'History', historyLoads);
  const firstEntry = await page.evaluate(() => {
    const li = document.querySelector('.paged[data-list="History"] li.entry');
    return { sequence: li.dataset.sequence, kind: li.dataset.kind, reason: li.querySelector('.reason')?.textContent ?? null, actor: li.querySelector('.actor')?.dataset.actor ?? null, text: li.textContent };
  });
  const granted = { outcome: grantOutcome.text, ok: grantOutcome.ok, firstEntry, total: (await page.textContent('#account-total')).replace(/,/g, '') };
  // The lots' terms: a start, a scope, a priority where a grant set them.
  await loaded(page, 'Lots', 0);
  const lotTerms = await page.evaluate(() => [...document.querySelectorAll('tr[data-lot]')].map((tr) => tr.cells[7].textContent).filter(Boolean));
  // Audit this account.
  await page.click('#audit-account-button');
  granted.audit = (await outcomeOf(page, 'audit-outcome')).text;
  // Refund its purchase.
  await page.click(`button[data-refund="${env.PURCHASE}"]`);
  const refund = { outcome: (await outcomeOf(page, 'refund-outcome')).text };
  await page.waitForSelector(`tr[data-purchase="${env.PURCHASE}"] [data-status="REFUNDED"]`, { timeout: WAIT_MS });
  refund.total = (await page.textContent('#account-total')).replace(/,/g, '');
  // Mark its identity verified.
  await page.click('#verify-button');
  const verified = { outcome: (await outcomeOf(page, 'verify-outcome')).text };
  await page.waitForFunction(() => document.getElementById('account-verified')?.textContent === 'Verified', null, { timeout: WAIT_MS });
  verified.button = await page.textContent('#verify-button');
  // Suspend it, then make it active again.
  const statuses = [];
  for (const status of ['SUSPENDED', 'ACTIVE']) {
    // The line keeps the last outcome until the next one: cleared, to wait for this one.
    await page.evaluate(() => document.getElementById('status-outcome').classList.remove('outcome-ok', 'outcome-error'));
    await page.selectOption('#status-select', status);
    await page.click('#status-form button[type="submit"]');
    await page.waitForFunction((status) => document.querySelector('#account-status [data-status]')?.dataset.status === status, status, { timeout: WAIT_MS });
    statuses.push((await outcomeOf(page, 'status-outcome')).text);
  }
  axeOf.account = await axe(page);
  await shoot(page, 'account');

  // Webhooks: the failed event, then redelivered once the receiver recovered.
  await go(page, '#/webhooks', 'webhooks');
  await loaded(page, 'Outbox', 0);
  const row = `tr[data-event="${env.EVENT}"]`;
  await page.waitForSelector(row, { timeout: WAIT_MS });
  const webhook = { failedStatus: await page.getAttribute(row, 'data-status'), failedError: await page.textContent(`${row} .last-error`) };
  axeOf.webhooks = await axe(page);
  await shoot(page, 'webhooks');
  step('event-failed-seen');
  // Redelivered only once the Rust test has healed the receiver (it says so on stdin).
  await resumed('healed');
  await page.click(`${row} button[data-redeliver]`);
  const redelivered = await outcomeOf(page, 'redeliver-outcome');
  webhook.outcome = redelivered.text;
  const before = await loads(page, 'Outbox');
  await page.selectOption('#outbox-status', 'DELIVERED');
  await loaded(page, 'Outbox', before);
  await page.waitForSelector(row, { timeout: WAIT_MS });
  webhook.deliveredStatus = await page.getAttribute(row, 'data-status');

  // Jobs: the failed period and its error; one job run now.
  await go(page, '#/jobs', 'jobs');
  const jobRow = `tr[data-job="${env.FAILED_JOB}"]`;
  await page.waitForSelector(jobRow, { timeout: WAIT_MS });
  const jobs = { status: await page.getAttribute(`${jobRow} [data-status]`, 'data-status'), lastError: await page.textContent(`${jobRow} .last-error`) };
  await page.click('tr[data-job="PURGE_IDEMPOTENCY_KEYS"] button[data-run]');
  jobs.ranNow = (await outcomeOf(page, 'run-outcome')).text;
  await page.click(`${jobRow} a`);
  await page.waitForSelector('#job-runs:not([hidden]) tr[data-period]', { timeout: WAIT_MS });
  jobs.periods = await page.evaluate(() =>
    [...document.querySelectorAll('#job-runs tr[data-period]')].map((tr) => [tr.dataset.period, tr.dataset.status, tr.querySelector('.last-error')?.textContent ?? null]),
  );
  axeOf.jobs = await axe(page);
  await shoot(page, 'jobs');

  // Coupons: create one, see it listed.
  await go(page, '#/coupons', 'coupons');
  await loaded(page, 'Coupons', 0);
  const couponLoads = await loads(page, 'Coupons');
  await page.fill('#coupon-code', 'SPRING-26');
  await page.fill('#coupon-credits', '10');
  await page.fill('#coupon-cap', '100');
  await page.fill('#coupon-valid-for', '30 days');
  await page.click('#coupon-form button[type="submit"]');
  const coupon = { outcome: (await outcomeOf(page, 'coupon-outcome')).text };
  await loaded(page, 'Coupons', couponLoads);
  coupon.row = (await cells(page, 'tr[data-coupon="SPRING-26"]')).slice(0, 4);
  axeOf.coupons = await axe(page);

  // The ledger audit and the admin log, where the server has them.
  let audit = null;
  let log = null;
  if (env.AUDIT === '1') {
    await go(page, '#/audit', 'audit');
    await page.click('#start-audit');
    audit = { queued: (await outcomeOf(page, 'audit-run-outcome')).text };
    step('audit-queued');
    await page.waitForSelector('#audit-runs tr[data-status="CLEAN"], #audit-runs tr[data-status="PROBLEMS"], #audit-runs tr[data-status="FAILED"]', { timeout: WAIT_MS });
    audit.row = await cells(page, '#audit-runs tbody tr:first-child');
    audit.status = await page.getAttribute('#audit-runs tbody tr:first-child', 'data-status');
    axeOf.audit = await axe(page);
    await shoot(page, 'audit');

    await go(page, '#/log', 'log');
    await loaded(page, 'Admin log', 0);
    const logLoads = await loads(page, 'Admin log');
    await page.fill('#log-subject', signIn.viewer);
    await page.click('#log-filter button[type="submit"]');
    await loaded(page, 'Admin log', logLoads);
    log = await page.evaluate(() => [...document.querySelectorAll('tr[data-action]')].map((tr) => [...tr.children].slice(1, 4).map((td) => td.textContent)));
    axeOf.log = await axe(page);
  }

  // A phone: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const routes = [['#/accounts', 'accounts'], [`#/account/${env.ACCOUNT}`, 'account'], ['#/jobs', 'jobs'], ['#/webhooks', 'webhooks'], ['#/coupons', 'coupons']];
  if (env.AUDIT === '1') routes.push(['#/audit', 'audit'], ['#/log', 'log']);
  for (const [hash, route] of routes) {
    await go(page, hash, route);
    phone[route] = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
  }
  await go(page, `#/account/${env.ACCOUNT}`, 'account');
  await loaded(page, 'History', 0);
  axeOf.phone = await axe(page);
  await shoot(page, 'phone');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Signing out forgets the token; tokens the server refuses lead back to the form with why.
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in-message', { timeout: WAIT_MS });
  const refused = {
    signedOut: { message: await page.textContent('#sign-in-message'), stored: await page.evaluate(() => sessionStorage.getItem('credits.console.token')) },
  };
  refused.bad = await refusedWith(page, env.BAD_TOKEN);
  refused.user = await refusedWith(page, env.USER_TOKEN);
  axeOf.refused = await axe(page);
  await shoot(page, 'sign-in');
  if (env.LINK) {
    // The link's code worked once: opening it again is refused.
    await page.goto(env.LINK, { waitUntil: 'load' });
    await page.waitForSelector('#sign-in-message', { timeout: WAIT_MS });
    refused.linkAgain = { message: await page.textContent('#sign-in-message'), addressBar: page.url() };
  }
  // A pasted admin token signs in too.
  await signInWith(page, env.TOKEN);
  await page.waitForSelector('#sign-out', { timeout: WAIT_MS });
  const pasted = {
    viewer: await page.textContent('#viewer-subject'),
    stored: (await page.evaluate(() => sessionStorage.getItem('credits.console.token'))) !== null,
    localStorage: await page.evaluate(() => localStorage.length),
    cookies: await page.evaluate(() => document.cookie),
  };

  await browser.close();
  result({ signIn, found, granted, lotTerms, refund, verified, statuses, webhook, jobs, coupon, audit, log, refused, pasted, phone, axe: axeOf, problems, foreign: foreign() });
});
