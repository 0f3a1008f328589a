// Pieces every console page draws the same way: data tables (which scroll inside their own box
// on a phone), status tags, and an action button whose outcome is shown next to it and said in
// the live region. Built on the portal's dom.js: text nodes only, never markup.
import { h, words } from '../../portal/js/dom.js';

/**
 * A table: `columns` are [label, {num?: true}] or labels; `rows` are arrays of cells (strings
 * or nodes), or `{ cells, attrs }` for a row with attributes.
 */
export function table(caption, columns, rows, attrs = {}) {
  const heads = columns.map((c) => (Array.isArray(c) ? c : [c, {}]));
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      { class: 'data', ...attrs },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, ...heads.map(([label, o]) => h('th', { scope: 'col', class: o.num ? 'num' : null }, label)))),
      h(
        'tbody',
        {},
        ...rows.map((row) => {
          const { cells, attrs: rowAttrs } = Array.isArray(row) ? { cells: row, attrs: {} } : row;
          return h('tr', rowAttrs, ...cells.map((cell, i) => h('td', { class: heads[i] && heads[i][1].num ? 'num' : null }, cell)));
        }),
      ),
    ),
  );
}

/** A status as a tag: "FAILED" -> a red "Failed". */
export function statusTag(status) {
  if (!status) return '';
  return h('span', { class: ['status', `status-${String(status).toLowerCase()}`], 'data-status': status }, words(status));
}

/** A line for an action's outcome, announced when it changes. */
export function outcome(id) {
  return h('p', { class: 'outcome', id, role: 'status', 'aria-live': 'polite' });
}

/** Shows `message` in `line` as success or failure, and in the page's live region. */
export function report(app, line, message, ok) {
  line.textContent = message;
  line.className = `outcome ${ok ? 'outcome-ok' : 'outcome-error'}`;
  app.notify(message, ok ? 'info' : 'error');
}

/**
 * Runs `action` while `button` is disabled; its resolved string is reported as success, a
 * thrown error's message as failure (a session error has already taken the operator to the
 * sign-in form). Resolves to whether it succeeded.
 */
export async function act(app, button, line, action) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    report(app, line, await action(), true);
    return true;
  } catch (error) {
    report(app, line, error && error.message ? error.message : String(error), false);
    return false;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** A labelled form field: `control` is an input or select with an `id`. */
export function field(label, control, hint) {
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('span', { class: 'hint muted', id: hintId }, hint) : null);
}

/** A select of `values` (enum names, shown as words), with `selected` chosen. */
export function select(id, name, values, selected, extra = []) {
  const el = h('select', { id, name }, ...extra.map(([value, label]) => h('option', { value }, label)));
  for (const value of values) el.append(h('option', { value, selected: value === selected }, words(value)));
  return el;
}
