// The console's account page in Chromium: the auto top-up and spend limits the account's user
// set (read as the API gives them), and the operator turning auto top-up off.
//
// Inputs: argv[2] the server's base URL; TOKEN an admin token to paste; ACCOUNT the account;
// CONSOLE_SCREENSHOTS a folder for docs/console-account-controls.png (optional).
import { join } from 'node:path';
import { axe, openPage, result, run, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { TOKEN, ACCOUNT, CONSOLE_SCREENSHOTS } = process.env;

const state = (page) =>
  page.evaluate(() => ({
    enabled: document.querySelector('#auto-top-up-state [data-enabled]')?.dataset.enabled ?? null,
    summary: document.querySelector('#auto-top-up-state [data-enabled]')?.textContent ?? null,
    disabled: document.getElementById('auto-top-up-disabled')?.textContent ?? null,
    bought: document.getElementById('auto-top-up-bought')?.textContent ?? null,
    failures: document.getElementById('auto-top-up-failures')?.textContent ?? null,
    pending: document.getElementById('auto-top-up-pending')?.textContent ?? null,
    offButton: !document.getElementById('auto-top-up-off').hidden,
    limits: [...document.querySelectorAll('#spend-limits-state tr[data-limit]')].map((tr) => [tr.dataset.limit, ...[...tr.cells].map((td) => td.textContent)]),
    perCharge: document.getElementById('spend-limits-per-charge')?.textContent ?? null,
    text: document.getElementById('customer-controls').textContent,
  }));

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  await page.goto(new URL('/console', base).href, { waitUntil: 'load' });
  await page.waitForSelector('#sign-in-form', { timeout: WAIT_MS });
  await page.fill('#sign-in-token', TOKEN);
  await page.click('#sign-in-form button[type="submit"]');
  await page.waitForSelector('#sign-out', { timeout: WAIT_MS });
  await page.evaluate((account) => {
    location.hash = `#/account/${account}`;
  }, ACCOUNT);
  await page.waitForSelector('#customer-controls #auto-top-up-state [data-enabled]', { timeout: WAIT_MS });
  const before = await state(page);
  const axeBefore = await axe(page);
  if (CONSOLE_SCREENSHOTS) await page.locator('#customer-controls').screenshot({ path: join(CONSOLE_SCREENSHOTS, 'console-account-controls.png') });
  // The button by keyboard: focus it and press Enter.
  await page.focus('#auto-top-up-off');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#auto-top-up-outcome.outcome-ok, #auto-top-up-outcome.outcome-error', { timeout: WAIT_MS });
  const outcome = await page.textContent('#auto-top-up-outcome');
  await page.waitForSelector('#auto-top-up-state [data-enabled="false"]', { timeout: WAIT_MS });
  const after = await state(page);
  await browser.close();
  result({ before, outcome, after, axe: axeBefore, problems, foreign: foreign() });
});
