// Shared by the browser scripts in this folder: Debian's Chromium, driven by playwright-core
// (which never downloads a browser), with the network cut off from everything but the server
// under test, and a record of every request the page tried to make.
//
// A script is run by the Rust tests (tests/support/browser.rs) as
//   node tests/browser/SCRIPT.mjs BASE_URL
// with its inputs in the environment. It talks back on stdout, one line each:
//   STEP name          a point reached (the Rust test may act on it, e.g. change a balance)
//   RESULT {json}      the last line: what the script saw, for the Rust test to assert
// and it exits non-zero on any failure, with the reason on stderr. Where the page must not go on
// before the Rust test has acted, the script waits in `resumed(name)` for the test's `GO name`
// line on its stdin (BrowserScript::resume).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

/** The waits for the page: bounded, so a broken page fails the test instead of hanging it. */
export const WAIT_MS = 30_000;

export function step(name) {
  console.log(`STEP ${name}`);
}

/**
 * Waits for the Rust test's `GO name` line on stdin (BrowserScript::resume): after a step the
 * test acts on, so the page reads only once the test has acted. Stdin is let go after each line,
 * so the script can end.
 */
export async function resumed(name) {
  const lines = createInterface({ input: process.stdin });
  try {
    for await (const line of lines) {
      if (line === `GO ${name}`) return;
      throw new Error(`expected "GO ${name}" on stdin, got "${line}"`);
    }
    throw new Error(`stdin closed before "GO ${name}"`);
  } finally {
    lines.close();
  }
}

export function result(value) {
  console.log(`RESULT ${JSON.stringify(value)}`);
}

/**
 * A browser page on `baseUrl` that can reach nothing else: host names other than 127.0.0.1 do
 * not resolve (Chromium's host resolver rules), and any request to another origin is aborted
 * and recorded (request interception). `foreign()` lists what the page tried to reach outside
 * the server, including WebSockets, so a test can assert that it is empty.
 */
export async function openPage(baseUrl) {
  const origin = new URL(baseUrl).origin;
  const wsOrigin = origin.replace(/^http/, 'ws');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const requests = [];
  const blocked = [];
  const websockets = [];
  const problems = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || new URL(url).origin === origin) {
      return route.continue();
    }
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('request', (request) => requests.push(request.url()));
  page.on('websocket', (socket) => websockets.push(socket.url()));
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // Errors include Content-Security-Policy violations and failed loads.
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  const foreign = () => [
    ...blocked,
    ...requests.filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin),
    ...websockets.filter((url) => new URL(url).origin !== wsOrigin),
  ];
  return { browser, page, requests, websockets, problems, foreign };
}

/** Runs `body`, reporting any failure on stderr and as the exit status. */
export async function run(body) {
  try {
    await body();
  } catch (error) {
    console.error(error && error.stack ? error.stack : String(error));
    process.exit(1);
  }
}

/** axe-core's script, pinned in package.json. */
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's violations of impact serious or critical on the page as it is now, one line each
 * ("rule (impact): target, target"). It is injected through evaluate, which the page's
 * Content-Security-Policy does not govern, so the page needs no exception for it.
 */
export async function axe(page) {
  const violations = await page.evaluate(async (source) => {
    (0, eval)(source);
    const outcome = await window.axe.run(document, { resultTypes: ['violations'] });
    return outcome.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => n.target.join(' ')) }));
  }, AXE);
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.targets.join(', ')}`);
}

/** Waits until the paged list `name` (the portal's pager.js, which the console uses too) has loaded once more than `before` times. */
export async function loadedAfter(page, name, before) {
  await page.waitForFunction(
    ([name, before]) => {
      const list = document.querySelector(`.paged[data-list="${name}"]`);
      return list && Number(list.dataset.loaded || 0) > before && !list.hasAttribute('aria-busy');
    },
    [name, before],
    { timeout: WAIT_MS },
  );
}

export async function loadCount(page, name) {
  return page.evaluate((name) => Number(document.querySelector(`.paged[data-list="${name}"]`)?.dataset.loaded || 0), name);
}
