// Talking to the server: GraphQL over HTTP (`gql`) and subscriptions over `/graphql/ws`
// (`subscribe`, the graphql-transport-ws protocol written out here). Every operation is one of
// the named operations in /portal/portal.graphql, fetched once; each request sends that whole
// document with an operation name, so a `persisted_only` server (which registered the
// document at start) runs it. The operator console (web/console) uses this same module with
// its own document and token (`configure`).

import { token as portalToken } from './session.js';

/** A refusal or failure: the server's code and message, and the request's id for support. */
export class ApiError extends Error {
  constructor(code, message, requestId) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.requestId = requestId || null;
  }
}

// Paths from this module's own URL, so the portal works under a path prefix (a `public_url`
// such as https://example.com/credits behind a reverse proxy): this file is
// {prefix}/portal/js/api.js.
let documentUrl = new URL('../portal.graphql', import.meta.url).href;
let token = portalToken;
const GRAPHQL_URL = new URL('../../graphql', import.meta.url).href;
const WEBSOCKET_URL = new URL('../../graphql/ws', import.meta.url);
WEBSOCKET_URL.protocol = WEBSOCKET_URL.protocol === 'https:' ? 'wss:' : 'ws:';

let documentText = null;

/**
 * Another page's document and token (the console's): `documentUrl` the absolute URL of its
 * .graphql file, `token()` its session's bearer token or null. Called once, before any request.
 */
export function configure(options) {
  documentUrl = options.documentUrl;
  token = options.token;
  documentText = null;
}

function loadDocument() {
  if (!documentText) {
    documentText = fetch(documentUrl, { credentials: 'omit' }).then(async (response) => {
      if (!response.ok) throw new ApiError('UNAVAILABLE', 'The page could not load. Reload it to try again.', response.headers.get('x-request-id'));
      return response.text();
    });
    documentText.catch(() => {
      documentText = null;
    });
  }
  return documentText;
}

function firstError(errors) {
  const error = errors[0] || {};
  return [(error.extensions && error.extensions.code) || 'ERROR', error.message || 'The request was refused.'];
}

/** Runs the named operation; resolves to its `data`, or throws an ApiError. */
export async function gql(operationName, variables = {}) {
  const query = await loadDocument();
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: 'POST',
      credentials: 'omit',
      // No token, no header: an operation that needs none (the console's openConsoleSession)
      // is then not refused for an empty bearer.
      headers: { 'content-type': 'application/json', accept: 'application/json', ...(token() ? { authorization: `Bearer ${token()}` } : {}) },
      body: JSON.stringify({ query, operationName, variables }),
    });
  } catch {
    throw new ApiError('NETWORK', 'The server could not be reached. Check your connection and try again.', null);
  }
  const requestId = response.headers.get('x-request-id');
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP_${response.status}`, `The server answered with status ${response.status}.`, requestId);
  }
  if (Array.isArray(body.errors) && body.errors.length > 0) {
    const [code, message] = firstError(body.errors);
    throw new ApiError(code, message, requestId);
  }
  if (!body.data) throw new ApiError(`HTTP_${response.status}`, `The server answered with status ${response.status}.`, requestId);
  return body.data;
}

/** A fresh idempotency key for one user action (a retry of the same action reuses it). */
export function idempotencyKey() {
  return crypto.randomUUID();
}

/**
 * The live connection's state, for the indicator: an event `change` whose `detail` is
 * 'connecting', 'live', 'offline' or 'idle'.
 */
export const connection = new EventTarget();
let connectionState = 'idle';
function setState(state) {
  if (state === connectionState) return;
  connectionState = state;
  connection.dispatchEvent(new CustomEvent('change', { detail: state }));
}
export function connectionStateNow() {
  return connectionState;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Subscribes to the named subscription over `/graphql/ws`: `onNext(data)` for each event,
 * `onError(ApiError)` for a refusal (the subscription then stops; a lost connection is not an
 * error: it reconnects with backoff, 1 s doubling to 30 s with jitter). Returns `stop()`.
 */
export function subscribe(operationName, variables, onNext, onError) {
  const id = '1';
  let socket = null;
  let stopped = false;
  let attempt = 0;
  let timer = null;

  const send = (message) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };
  const fail = (error) => {
    stopped = true;
    if (socket) socket.close(1000);
    setState('offline');
    onError(error);
  };
  const retry = () => {
    if (stopped) return;
    setState('offline');
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt += 1;
    timer = setTimeout(open, delay);
  };

  async function open() {
    let query;
    try {
      query = await loadDocument();
    } catch {
      retry();
      return;
    }
    if (stopped) return;
    setState('connecting');
    const ws = new WebSocket(WEBSOCKET_URL.href, 'graphql-transport-ws');
    socket = ws;
    ws.addEventListener('open', () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token() || ''}` } }));
    });
    ws.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      switch (message.type) {
        case 'connection_ack':
          attempt = 0;
          setState('live');
          send({ id, type: 'subscribe', payload: { query, operationName, variables } });
          break;
        case 'ping':
          send({ type: 'pong', ...(message.payload ? { payload: message.payload } : {}) });
          break;
        case 'next': {
          const payload = message.payload || {};
          if (Array.isArray(payload.errors) && payload.errors.length > 0) {
            const [code, text] = firstError(payload.errors);
            fail(new ApiError(code, text, null));
          } else if (payload.data) {
            onNext(payload.data);
          }
          break;
        }
        case 'error': {
          const [code, text] = firstError(Array.isArray(message.payload) ? message.payload : [message.payload || {}]);
          fail(new ApiError(code, text, null));
          break;
        }
        case 'complete':
          // The server ended it (a restart, the token's end): start again, or stop on refusal.
          ws.close(1000);
          break;
        default:
          break;
      }
    });
    ws.addEventListener('close', (event) => {
      if (socket === ws) socket = null;
      if (stopped) return;
      // 4401/4403: the token was refused; reconnecting would be refused again.
      if (event.code === 4401 || event.code === 4403) {
        fail(new ApiError('UNAUTHENTICATED', 'Your session has ended.', null));
        return;
      }
      retry();
    });
  }

  open();
  return function stop() {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    if (socket) {
      send({ id, type: 'complete' });
      socket.close(1000);
      socket = null;
    }
    setState('idle');
  };
}
