// A browser app on another origin calls the API, as a real one would: a page served from
// APP_PORT on 127.0.0.1 (its own origin) fetches the server's /graphql with a user token in
// `Authorization`, which makes the browser send a CORS preflight first. The server named in
// argv[2] allows that origin; the one in DENIED_API allows none, so the browser must refuse the
// call there. Nothing else is reachable.
//
// Inputs: argv[2] the allowing server's base URL; DENIED_API the other's; TOKEN a user token;
// APP_PORT the port to serve the app page on.
import http from 'node:http';
import { chromium } from 'playwright-core';
import { result, run, WAIT_MS } from './lib.mjs';

const api = process.argv[2];
const { DENIED_API, TOKEN, APP_PORT } = process.env;

const page_html = `<!doctype html><meta charset="utf-8"><title>An app</title>
<script>
  window.callApi = async (api, token) => {
    try {
      const response = await fetch(api + '/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token },
        body: JSON.stringify({ query: '{ me { id balance { available } } }' }),
      });
      return { status: response.status, requestId: response.headers.get('x-request-id'), body: await response.json() };
    } catch (error) {
      return { refused: String(error) };
    }
  };
</script><p>app</p>`;

run(async () => {
  const app = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page_html);
  });
  await new Promise((resolve) => app.listen(Number(APP_PORT), '127.0.0.1', resolve));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    ],
  });
  const page = await browser.newPage();
  const origin = `http://127.0.0.1:${APP_PORT}`;
  await page.goto(origin + '/', { waitUntil: 'load', timeout: WAIT_MS });
  const allowed = await page.evaluate(([api, token]) => window.callApi(api, token), [api, TOKEN]);
  const denied = await page.evaluate(([api, token]) => window.callApi(api, token), [DENIED_API, TOKEN]);
  await browser.close();
  app.close();
  result({ origin, allowed, denied });
});
