// A list read a page at a time through a connection's opaque cursors, both ways: "Older" asks
// for `first` after the page's `endCursor`, "Newer" for `last` before its `startCursor` (every
// list the portal pages is newest first). The server says whether there is more either way
// (`pageInfo.hasNextPage`/`hasPreviousPage`), so the buttons are enabled from that alone.
import { h, clear } from './dom.js';

/**
 * @param {{name: string, pageSize: number, fetch: (args) => Promise<connection>,
 *          show: (nodes, connection) => Node, empty: string, newer?: string, older?: string}} list
 *   `fetch(args)` gets `{first, after, last, before}` (unused ones null) and returns the
 *   connection (`nodes`, `pageInfo`, perhaps `totalCount`); `show(nodes)` draws one page.
 * @returns {{element: HTMLElement, load: (args?) => Promise<void>, reset: () => Promise<void>}}
 */
export function pagedList({ name, pageSize, fetch, show, empty, newer = 'Newer', older = 'Older' }) {
  const body = h('div', { class: 'paged-body', 'aria-live': 'polite' });
  const status = h('p', { class: 'paged-status' });
  const newerButton = h('button', { type: 'button', class: 'button button-quiet', 'data-page': 'newer' }, `← ${newer}`);
  const olderButton = h('button', { type: 'button', class: 'button button-quiet', 'data-page': 'older' }, `${older} →`);
  const nav = h('nav', { class: 'pager', 'aria-label': `${name} pages` }, newerButton, status, olderButton);
  const element = h('div', { class: 'paged', 'data-list': name }, body, nav);
  let pageInfo = null;
  let total = null;
  let busy = false;

  async function load(args = {}) {
    if (busy) return;
    busy = true;
    newerButton.disabled = true;
    olderButton.disabled = true;
    element.setAttribute('aria-busy', 'true');
    try {
      const connection = await fetch({ first: null, after: null, last: null, before: null, ...args });
      pageInfo = connection.pageInfo;
      if (connection.totalCount != null) total = connection.totalCount;
      clear(body);
      body.append(connection.nodes.length ? show(connection.nodes, connection) : h('p', { class: 'empty' }, empty));
      status.textContent = total != null ? `${total} in all` : '';
    } catch (error) {
      clear(body);
      body.append(h('p', { class: 'error', role: 'alert' }, error && error.message ? error.message : String(error)));
      pageInfo = null;
    } finally {
      busy = false;
      element.removeAttribute('aria-busy');
      newerButton.disabled = !(pageInfo && pageInfo.hasPreviousPage);
      olderButton.disabled = !(pageInfo && pageInfo.hasNextPage);
      element.dataset.loaded = String(Number(element.dataset.loaded || 0) + 1);
    }
  }

  newerButton.addEventListener('click', () => pageInfo && load({ last: pageSize, before: pageInfo.startCursor }));
  olderButton.addEventListener('click', () => pageInfo && load({ first: pageSize, after: pageInfo.endCursor }));

  return {
    element,
    load,
    /** Back to the first page, counting again (filters changed). */
    reset() {
      total = null;
      return load({ first: pageSize });
    },
  };
}
