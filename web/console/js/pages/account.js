// One account (#/account/ID): its state and balance, the operator's actions on it (grant
// credits, set status, verify identity, audit it), the controls its user set (auto top-up, with
// a button to turn it off, and spend limits with what each used), then its lots (open and closed), history
// (each entry's operator when an admin made it), purchases (with a refund button), containers
// and market jobs. Lists are paged with the server's cursors (the portal's pager). Every
// credit-moving action sends an idempotency key made for that submission, kept for a retry of
// the same submission and dropped once it succeeded or the form changed.
import { clear, formatCredits, formatDate, formatDateTime, formatMoney, h, words } from '../../../portal/js/dom.js';
import { pagedList } from '../../../portal/js/pager.js';
import { entry } from '../../../portal/js/pages/history.js';
import { act, field, outcome, select, statusTag, table } from '../ui.js';

const PAGE = 10;
const SOURCES = ['ADJUSTMENT', 'EVENT', 'FEEDBACK', 'COUPON', 'REFERRAL', 'SIGN_UP', 'CHECK_IN', 'AD_REWARD', 'DAILY_FREE', 'LUCKY', 'FIRST_PURCHASE_BONUS', 'MONTHLY_PLAN', 'SUBSCRIPTION', 'PURCHASE', 'PROVIDER_EARNINGS'];
const CLASSES = ['PROMOTIONAL', 'FREE', 'PAID'];
const STATUSES = ['ACTIVE', 'INACTIVE', 'SUSPENDED'];

function summary(account) {
  const b = account.balance;
  return h(
    'section',
    { class: 'card', id: 'account-summary', 'aria-labelledby': 'account-summary-title' },
    h('h2', { id: 'account-summary-title' }, 'Balance'),
    h('p', { class: 'total' }, h('span', { class: 'total-amount', id: 'account-total' }, formatCredits(b.total)), ' credits'),
    h(
      'dl',
      { class: 'figures' },
      h('div', { class: 'figure' }, h('dt', {}, 'Available'), h('dd', {}, formatCredits(b.available))),
      h('div', { class: 'figure' }, h('dt', {}, 'Held'), h('dd', {}, formatCredits(b.held))),
      h('div', { class: 'figure' }, h('dt', {}, 'Status'), h('dd', { id: 'account-status' }, statusTag(account.status))),
      h('div', { class: 'figure' }, h('dt', {}, 'Plan'), h('dd', {}, account.plan)),
      h('div', { class: 'figure' }, h('dt', {}, 'Identity'), h('dd', { id: 'account-verified' }, account.identityVerified ? 'Verified' : 'Not verified')),
      h('div', { class: 'figure' }, h('dt', {}, 'Created'), h('dd', {}, formatDate(account.createdAt))),
    ),
    b.bars.length
      ? table(
          'Balance by source',
          ['Source', 'Class', ['Remaining', { num: true }], ['Held', { num: true }]],
          b.bars.map((bar) => [words(bar.source), words(bar.class), formatCredits(bar.remaining), formatCredits(bar.held)]),
        )
      : h('p', { class: 'muted' }, 'No credits.'),
  );
}

/** Keeps one idempotency key per submission of `form` (see the module's comment). */
function keyed(app, form) {
  form.addEventListener('input', () => delete form.dataset.key);
  return {
    key() {
      if (!form.dataset.key) form.dataset.key = app.idempotencyKey();
      return form.dataset.key;
    },
    done() {
      delete form.dataset.key;
    },
  };
}

function grantForm(app, id, refresh) {
  const amount = h('input', { id: 'grant-amount', name: 'amount', type: 'text', inputmode: 'decimal', required: true, autocomplete: 'off', pattern: '[0-9]+(\\.[0-9]+)?' });
  const validity = h('input', { id: 'grant-validity', name: 'validFor', type: 'text', autocomplete: 'off', placeholder: '30 days' });
  const reason = h('input', { id: 'grant-reason', name: 'reason', type: 'text', maxlength: '500', autocomplete: 'off', required: true });
  const button = h('button', { type: 'submit', class: 'button' }, 'Grant credits');
  const line = outcome('grant-outcome');
  const form = h(
    'form',
    { class: 'filters', id: 'grant-form', 'aria-labelledby': 'grant-title' },
    field('Source', select('grant-source', 'source', SOURCES, 'ADJUSTMENT')),
    field('Class', select('grant-class', 'class', CLASSES, 'PROMOTIONAL')),
    field('Amount (credits)', amount),
    field('Valid for', validity, 'Empty: never expires'),
    field('Reason', reason),
    h('div', { class: 'actions' }, button),
  );
  const idempotency = keyed(app, form);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act(app, button, line, async () => {
      const input = {
        accountId: id,
        source: form.elements.source.value,
        class: form.elements.class.value,
        amount: amount.value.trim(),
        validFor: validity.value.trim() || null,
        reason: reason.value.trim(),
        idempotencyKey: idempotency.key(),
      };
      await app.gql('ConsoleGrant', { input });
      idempotency.done();
      form.reset();
      await refresh();
      return `Granted ${formatCredits(input.amount)} credits.`;
    });
  });
  return h('section', { class: 'card', id: 'grant' }, h('h2', { id: 'grant-title' }, 'Grant credits'), form, line);
}

/**
 * The status, identity and audit actions; built once (so their outcomes stay on screen), and
 * `update(account)` shows the account as it is after an action.
 */
function settings(app, current, refresh) {
  const account = current();
  const status = select('status-select', 'status', STATUSES, account.status);
  const statusButton = h('button', { type: 'submit', class: 'button button-quiet' }, 'Set status');
  const statusLine = outcome('status-outcome');
  const statusForm = h('form', { class: 'inline-form', id: 'status-form', 'aria-label': 'Account status' }, field('Status', status), statusButton);
  statusForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(app, statusButton, statusLine, async () => {
      const r = await app.gql('ConsoleSetStatus', { input: { accountId: account.id, status: status.value } });
      await refresh();
      return `Status is now ${words(r.setAccountStatus.status)}.`;
    });
  });
  const verifyButton = h('button', { type: 'button', class: 'button button-quiet', id: 'verify-button' });
  const update = (now) => {
    status.value = now.status;
    verifyButton.textContent = now.identityVerified ? 'Mark identity not verified' : 'Mark identity verified';
  };
  update(account);
  const verifyLine = outcome('verify-outcome');
  verifyButton.addEventListener('click', () =>
    act(app, verifyButton, verifyLine, async () => {
      const r = await app.gql('ConsoleSetIdentityVerified', { accountId: account.id, verified: !current().identityVerified });
      await refresh();
      return r.setIdentityVerified.identityVerified ? 'Identity marked verified.' : 'Identity marked not verified.';
    }),
  );
  const auditButton = h('button', { type: 'button', class: 'button button-quiet', id: 'audit-account-button' }, 'Audit this account');
  const auditLine = outcome('audit-outcome');
  const auditResult = h('div', { id: 'audit-result' });
  auditButton.addEventListener('click', () =>
    act(app, auditButton, auditLine, async () => {
      const a = (await app.gql('ConsoleAuditAccount', { id: account.id })).auditAccount;
      clear(auditResult).append(
        h(
          'dl',
          { class: 'figures' },
          h('div', { class: 'figure' }, h('dt', {}, 'Lots'), h('dd', {}, String(a.lots))),
          h('div', { class: 'figure' }, h('dt', {}, 'Entries'), h('dd', {}, String(a.entries))),
          h('div', { class: 'figure' }, h('dt', {}, 'Held'), h('dd', {}, formatCredits(a.held))),
          h('div', { class: 'figure' }, h('dt', {}, 'Awaiting expiry'), h('dd', {}, String(a.lotsAwaitingExpiry))),
        ),
      );
      if (a.problems.length) auditResult.append(h('ul', { class: 'problems' }, ...a.problems.map((p) => h('li', {}, p))));
      return a.clean ? `Audit clean at ${formatDateTime(a.at)}.` : `Audit found ${a.problems.length} problem(s).`;
    }),
  );
  const element = h(
    'section',
    { class: 'card', id: 'account-actions', 'aria-labelledby': 'account-actions-title' },
    h('h2', { id: 'account-actions-title' }, 'Settings and checks'),
    statusForm,
    statusLine,
    h('div', { class: 'action-row' }, verifyButton),
    verifyLine,
    h('div', { class: 'action-row' }, auditButton),
    auditLine,
    auditResult,
  );
  return { element, update };
}

/** How much a top-up buys: a fixed amount or up to a target balance. */
function topUpSize(auto) {
  return auto.amount ? `${formatCredits(auto.amount)} each time` : `up to a balance of ${formatCredits(auto.targetBalance)}`;
}

/**
 * The controls the account's user set: auto top-up (its setting, this month, failures, why it
 * turned itself off, the purchase waiting for payment; "Turn off" while it is on) and spend
 * limits (per period, with what each used). Built once; `update(account)` redraws the figures.
 */
function controls(app, current, refresh) {
  const autoBox = h('div', { id: 'auto-top-up-state' });
  const limitsBox = h('div', { id: 'spend-limits-state' });
  const off = h('button', { type: 'button', class: 'button button-quiet', id: 'auto-top-up-off' }, 'Turn off auto top-up');
  const line = outcome('auto-top-up-outcome');
  off.addEventListener('click', () =>
    act(app, off, line, async () => {
      await app.gql('ConsoleSetAutoTopUp', { input: { accountId: current().id, enabled: false } });
      await refresh();
      return 'Auto top-up turned off. The user can turn it on again.';
    }),
  );
  const update = (account) => {
    const auto = account.autoTopUp;
    if (!auto) {
      clear(autoBox).append(h('p', { class: 'muted', 'data-enabled': 'false' }, 'Never set.'));
    } else {
      clear(autoBox).append(
        h('p', { 'data-enabled': String(auto.enabled) }, h('span', { class: ['status', auto.enabled ? 'status-on' : 'status-off'] }, auto.enabled ? 'On' : 'Off'), ` When its credits fall under ${formatCredits(auto.threshold)}, buy ${topUpSize(auto)}; at most ${formatCredits(auto.monthlyCap)} a month.`),
        // (DOM's append writes null as text: only what is there.)
        ...(auto.disabledReason ? [h('p', { class: 'outcome outcome-error', id: 'auto-top-up-disabled' }, `Turned itself off ${formatDateTime(auto.disabledAt)}: ${auto.disabledReason}`)] : []),
        h(
          'dl',
          { class: 'figures' },
          h('div', { class: 'figure' }, h('dt', {}, 'Bought this month'), h('dd', { id: 'auto-top-up-bought' }, `${formatCredits(auto.boughtThisMonth)} of ${formatCredits(auto.monthlyCap)}`)),
          h('div', { class: 'figure' }, h('dt', {}, 'Failures in a row'), h('dd', { id: 'auto-top-up-failures' }, `${auto.failuresInARow} of ${auto.maxFailures}`)),
          h('div', { class: 'figure' }, h('dt', {}, 'Pending purchase'), h('dd', { id: 'auto-top-up-pending' }, auto.pendingPurchase ? `#${auto.pendingPurchase.id}, ${formatCredits(auto.pendingPurchase.credits)} credits` : 'None')),
          h('div', { class: 'figure' }, h('dt', {}, 'Changed'), h('dd', {}, formatDateTime(auto.updatedAt))),
        ),
      );
    }
    off.hidden = !(auto && auto.enabled);
    const limits = account.spendLimits;
    clear(limitsBox).append(
      limits.limits.length
        ? table(
            'Spend limits',
            ['Feature', 'Period', ['Limit', { num: true }], ['Used', { num: true }], ['Left', { num: true }], 'Resets', 'State'],
            limits.limits.map((l) => ({
              attrs: { 'data-limit': `${l.feature || '*'}:${l.period}` },
              cells: [l.feature || 'All features', words(l.period), formatCredits(l.max), formatCredits(l.used), formatCredits(l.remaining), formatDateTime(l.resetsAt), l.exceeded ? h('span', { class: 'status status-over' }, 'Over the limit') : 'Within'],
            })),
          )
        : h('p', { class: 'muted' }, 'No limits per day or month.'),
      h('p', { id: 'spend-limits-per-charge' }, limits.maxPerCharge ? `At most ${formatCredits(limits.maxPerCharge)} credits per charge.` : 'No maximum per charge.'),
    );
  };
  update(current());
  const element = h(
    'section',
    { class: 'card', id: 'customer-controls', 'aria-labelledby': 'customer-controls-title' },
    h('h2', { id: 'customer-controls-title' }, 'Auto top-up and spend limits'),
    h('div', { class: 'controls-part' }, h('h3', {}, 'Auto top-up'), autoBox, h('div', { class: 'action-row' }, off), line),
    h('div', { class: 'controls-part' }, h('h3', {}, 'Spend limits'), limitsBox),
  );
  return { element, update };
}

/** What sets a lot apart from the program's defaults: its start, its scope, its priority. */
function terms(lot) {
  const parts = [];
  if (lot.effectiveAt) parts.push(`${lot.upcoming ? 'starts' : 'started'} ${formatDateTime(lot.effectiveAt)}`);
  if (lot.features) parts.push(`only ${lot.features.join(', ')}`);
  if (lot.priority !== 50) parts.push(`priority ${lot.priority}`);
  return parts.join('; ');
}

function lots(app, id) {
  return pagedList({
    name: 'Lots',
    pageSize: PAGE,
    empty: 'No lots.',
    fetch: async (args) => (await app.gql('ConsoleLots', { id, ...args })).account.lots,
    show: (nodes) =>
      table(
        'Lots, open and closed',
        ['Lot', 'Source', 'Class', ['Granted', { num: true }], ['Remaining', { num: true }], 'Granted at', 'Expires', 'Terms', 'Origin'],
        nodes.map((l) => ({
          attrs: { 'data-lot': l.id, class: l.expired || l.remaining === '0' ? 'closed' : null },
          cells: [l.id, words(l.source), words(l.class), formatCredits(l.granted), formatCredits(l.remaining), formatDateTime(l.grantedAt), l.expiresAt ? `${formatDateTime(l.expiresAt)}${l.expired ? ' (expired)' : ''}` : 'Never', terms(l), l.originKind ? `${l.originKind} ${l.originId || ''}` : ''],
        })),
      ),
  });
}

/** The portal's entry, with what an operator needs besides: the operation, the sequence, and
 * the admin who made the entry. */
function operatorEntry(node) {
  return entry(node, [
    h('span', { class: 'tag' }, node.operation),
    h('span', { class: 'tag' }, `#${node.sequence}`),
    node.actor ? h('span', { class: 'tag actor', 'data-actor': node.actor }, `by ${node.actor}`) : null,
  ]);
}

function history(app, id) {
  return pagedList({
    name: 'History',
    pageSize: PAGE,
    empty: 'No entries.',
    fetch: async (args) => {
      const withCount = args.after == null && args.before == null;
      return (await app.gql('ConsoleHistory', { id, withCount, ...args })).account.history;
    },
    show: (nodes) => h('ol', { class: 'entries' }, ...nodes.map(operatorEntry)),
  });
}

function purchases(app, id, refresh) {
  const line = outcome('refund-outcome');
  const list = pagedList({
    name: 'Purchases',
    pageSize: PAGE,
    empty: 'No purchases.',
    fetch: async (args) => (await app.gql('ConsolePurchases', { id, ...args })).account.purchases,
    show: (nodes) =>
      table(
        'Purchases',
        ['Purchase', 'Created', 'Package', ['Credits', { num: true }], ['Amount', { num: true }], 'Status', ''],
        nodes.map((p) => {
          let button = null;
          if (p.status === 'PAID') {
            button = h('button', { type: 'button', class: 'button button-quiet', 'data-refund': p.id, 'aria-label': `Refund purchase ${p.id}` }, 'Refund');
            // One key per purchase while the page is open: pressing again retries the same refund.
            const key = app.idempotencyKey();
            button.addEventListener('click', () =>
              act(app, button, line, async () => {
                const r = (await app.gql('ConsoleRefund', { input: { purchaseId: p.id, idempotencyKey: key, reason: 'Refunded by the operator' } })).refundPurchase;
                await refresh();
                return `Refunded ${formatMoney(r.refunded.amountMinor, r.refunded.currency)}: ${formatCredits(r.credits)} credits taken back.`;
              }),
            );
          }
          return {
            attrs: { 'data-purchase': p.id },
            cells: [p.id, formatDateTime(p.createdAt), p.package || 'Custom', formatCredits(p.credits), formatMoney(p.amount.amountMinor, p.amount.currency), statusTag(p.status), button],
          };
        }),
      ),
  });
  return { list, line };
}

function containers(account) {
  if (!account.containers.length) return h('p', { class: 'empty' }, 'No containers.');
  return table(
    'Containers',
    ['Container', 'Tier', 'State', ['Storage (GB)', { num: true }], 'Updated'],
    account.containers.map((c) => [c.containerId, c.tier, statusTag(c.state), String(c.storageGb), formatDateTime(c.updatedAt)]),
  );
}

function marketJobs(app, id) {
  return pagedList({
    name: 'Market jobs',
    pageSize: PAGE,
    empty: 'No market jobs.',
    fetch: async (args) => (await app.gql('ConsoleMarketJobs', { id, ...args })).account.jobs,
    show: (nodes) =>
      table(
        'Market jobs',
        ['Job', 'Workload', 'Status', ['Price', { num: true }], ['Budget', { num: true }], 'Provider', 'Deadline'],
        nodes.map((j) => [j.jobId, j.workload, statusTag(j.status), formatCredits(j.price), formatCredits(j.budget), j.provider || '', formatDateTime(j.deadline)]),
      ),
  });
}

function card(id, title, ...children) {
  return h('section', { class: 'card', id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...children);
}

export async function render(root, app) {
  const id = app.param;
  if (!id) {
    location.hash = '#/accounts';
    return;
  }
  const top = h('div', { class: 'grid' });
  const historyList = history(app, id);
  const lotList = lots(app, id);
  const containerBox = h('div');
  let account = null;
  const { list: purchaseList, line: refundLine } = purchases(app, id, () => refresh());
  let actions = null;
  let customer = null;
  const controlsBox = h('div');

  /** Reads the account again and redraws what an action changes. */
  async function refresh() {
    account = (await app.gql('ConsoleAccount', { id })).account;
    if (!actions) actions = settings(app, () => account, refresh);
    actions.update(account);
    if (!customer) customer = controls(app, () => account, refresh);
    customer.update(account);
    clear(top).append(summary(account), actions.element);
    if (!controlsBox.firstChild) controlsBox.append(customer.element);
    clear(containerBox).append(containers(account));
    await Promise.all([historyList.reset(), lotList.reset(), purchaseList.reset()]);
  }

  const jobs = marketJobs(app, id);
  clear(root).append(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/accounts' }, '← Accounts')),
    h('h1', { id: 'account-title' }, `Account ${id}`),
    top,
    grantForm(app, id, () => refresh()),
    controlsBox,
    card('history', 'History', historyList.element),
    card('lots', 'Lots', lotList.element),
    card('purchases', 'Purchases', purchaseList.element, refundLine),
    card('containers', 'Containers', containerBox),
    card('market-jobs', 'Market jobs', jobs.element),
  );
  await Promise.all([refresh(), jobs.reset()]);
}
