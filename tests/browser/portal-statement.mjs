// The portal's Statement page in Chromium: open it, pick a month, read the figures, the lots
// and the digest; check that printing hides the navigation and the controls; fetch the
// "Download JSON" link's document.
//
// Inputs: argv[2] the server's base URL; URL the portal link; MONTH the month to pick;
// PORTAL_SCREENSHOTS a folder for docs/portal-statement.png (optional).
// Prints RESULT with what was seen, axe-core's serious/critical violations, and any foreign
// request or page error.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { axe, openPage, result, run, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { URL: PORTAL_URL, MONTH, PORTAL_SCREENSHOTS } = process.env;

const text = (page, selector) => page.locator(selector).first().textContent();

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  await page.goto(PORTAL_URL, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  await page.click('nav a[href="#/statement"]');
  await page.waitForSelector('#statement', { timeout: WAIT_MS });
  const currentMonth = await page.locator('#statement').getAttribute('data-month');
  const currentComplete = await page.locator('#statement').getAttribute('data-complete');
  await page.fill('#statement-month', MONTH);
  await page.click('#statement-form button[type="submit"]');
  await page.waitForSelector(`#statement[data-month="${MONTH}"]`, { timeout: WAIT_MS });
  const seen = {
    currentMonth,
    currentComplete,
    complete: await page.locator('#statement').getAttribute('data-complete'),
    opening: await text(page, '#statement-opening td'),
    closing: await text(page, '#statement-closing td'),
    expired: await text(page, '#statement-expired td'),
    refunded: await text(page, '#statement-refunded td'),
    sources: await page.locator('tr[data-source]').evaluateAll((rows) => rows.map((r) => [r.dataset.source, r.querySelector('td').textContent])),
    features: await page.locator('tr[data-feature]').evaluateAll((rows) => rows.map((r) => [r.dataset.feature, r.querySelector('td').textContent])),
    lots: await page.locator('tr[data-lot]').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent))),
    digest: await text(page, '#statement-digest'),
  };
  if (PORTAL_SCREENSHOTS) await page.screenshot({ path: join(PORTAL_SCREENSHOTS, 'portal-statement.png'), fullPage: true });
  // The link's document, downloaded as a user would (the page's policy lets no script fetch it).
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: WAIT_MS }), page.click('#statement-download')]);
  seen.downloaded = readFileSync(await download.path(), 'utf8');
  seen.downloadName = download.suggestedFilename();
  await page.emulateMedia({ media: 'print' });
  seen.printed = {
    nav: await page.locator('nav').isVisible(),
    form: await page.locator('#statement-form').isVisible(),
    download: await page.locator('#statement-download').isVisible(),
    statement: await page.locator('#statement').isVisible(),
  };
  if (PORTAL_SCREENSHOTS) await page.screenshot({ path: join(PORTAL_SCREENSHOTS, 'portal-statement-print.png'), fullPage: true });
  await page.emulateMedia({ media: 'screen' });
  seen.axe = await axe(page);
  await browser.close();
  result({ ...seen, problems, foreign: foreign() });
});
