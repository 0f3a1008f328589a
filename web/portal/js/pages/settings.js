// The Settings page: the account's auto top-up (on or off, the threshold, a fixed amount or a
// target balance, the monthly cap; what it bought this month, failed payments in a row, why it
// turned itself off, the top-up waiting for payment), its spend limits (per feature or all, per
// UTC day or month, and a maximum per charge; what each has used and when it resets), and,
// where the program has gifts (`program.gifts`), a form to send credits to another account.
//
// The server decides every rule (minimum purchase, whole credits, duplicates, limits): the page
// only checks that an amount is written as the API takes it, and shows a refusal as a sentence
// for its code plus the server's message (errors.js), marking the field it names. The gift and
// the limits carry an idempotency key made for a submission; it is kept for a retry only when
// the outcome is unknown (no answer), and dropped once the server answered or the form changed.

import { clear, formatCredits, formatDate, formatDateTime, h } from '../dom.js';
import { explain, outcomeUnknown } from '../errors.js';

/** An amount as the API takes it: digits, at most 6 places, no sign (domain.md, amounts). */
const AMOUNT = /^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$/;

const PERIODS = [
  ['DAY', 'Per day'],
  ['MONTH', 'Per month'],
];

function credits(amount) {
  return `${formatCredits(amount)} credits`;
}

/** A labelled field: `control` has an id; `hint` is shown under the label and read with it. */
function field(label, control, hint) {
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), hint ? h('span', { class: 'hint muted', id: hintId }, hint) : null, control);
}

function amountInput(id, name, value) {
  const input = h('input', { id, name, type: 'text', inputmode: 'decimal', autocomplete: 'off', spellcheck: 'false' });
  input.value = value || '';
  return input;
}

function outcomeLine(id) {
  return h('p', { class: 'outcome', id, role: 'status', 'aria-live': 'polite' });
}

function say(app, line, message, ok, code = null) {
  line.textContent = message;
  line.className = `outcome ${ok ? 'outcome-ok' : 'outcome-error'}`;
  if (code) line.dataset.code = code;
  else delete line.dataset.code;
  app.notify(message, ok ? 'success' : 'error');
}

/** Clears the marks of a previous refusal on `form`'s fields. */
function unmark(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** Marks `input` as the field at fault and moves the keyboard to it. */
function mark(input) {
  input.setAttribute('aria-invalid', 'true');
  input.focus();
}

/**
 * Checks the amounts of a form before sending: `[input, required]` pairs. Returns null, or the
 * first input written in a way the API does not take (marked, with a message).
 */
function badAmount(pairs) {
  for (const [input, required] of pairs) {
    const text = input.value.trim();
    if (text === '' ? required : !AMOUNT.test(text)) return input;
  }
  return null;
}

/** One idempotency key per submission of `form` (see the module's comment). */
function keyed(app, form) {
  form.addEventListener('input', () => delete form.dataset.key);
  return {
    key() {
      if (!form.dataset.key) form.dataset.key = app.idempotencyKey();
      return form.dataset.key;
    },
    /** After an answer: a definite one ends the key; an unknown outcome keeps it for the retry. */
    settle(error) {
      if (!error || !outcomeUnknown(error)) delete form.dataset.key;
    },
  };
}

// Auto top-up.

const AUTO_NAMES = { threshold: 'the threshold', targetBalance: 'the target balance', monthlyCap: 'the monthly cap', amount: 'the amount' };

function autoTopUpState(auto) {
  if (!auto) return h('p', { class: 'muted', id: 'auto-top-up-status', 'data-enabled': 'false' }, 'Auto top-up is off.');
  const parts = [];
  parts.push(
    h(
      'p',
      { id: 'auto-top-up-status', 'data-enabled': String(auto.enabled) },
      h('span', { class: ['status', auto.enabled ? 'status-on' : 'status-off'] }, auto.enabled ? 'On' : 'Off'),
      ' ',
      auto.enabled
        ? `When your credits fall under ${formatCredits(auto.threshold)}, ${auto.amount ? `${credits(auto.amount)} are bought` : `enough is bought to reach ${formatCredits(auto.targetBalance)}`}.`
        : 'No top-up is made while it is off; the setting below is kept.',
    ),
  );
  if (auto.disabledReason) {
    parts.push(
      h(
        'div',
        { class: 'banner', id: 'auto-top-up-disabled', role: 'alert' },
        h('h3', {}, 'Auto top-up turned itself off'),
        h('p', {}, `${auto.disabledReason}${auto.disabledAt ? ` (${formatDateTime(auto.disabledAt)})` : ''}. Check your payment method in the app, then turn it on again.`),
      ),
    );
  }
  parts.push(
    h(
      'dl',
      { class: 'figures', id: 'auto-top-up-figures' },
      h('div', { class: 'figure' }, h('dt', {}, 'Bought this month'), h('dd', { id: 'auto-top-up-bought' }, `${formatCredits(auto.boughtThisMonth)} of ${formatCredits(auto.monthlyCap)}`)),
      h('div', { class: 'figure' }, h('dt', {}, 'Failed payments in a row'), h('dd', { id: 'auto-top-up-failures' }, `${auto.failuresInARow} of ${auto.maxFailures}`)),
      h('div', { class: 'figure' }, h('dt', {}, 'Monthly cap starts again'), h('dd', {}, formatDate(auto.monthEndsAt))),
    ),
  );
  const pending = auto.pendingPurchase;
  parts.push(
    pending
      ? h('p', { class: 'note', id: 'auto-top-up-pending', 'data-purchase': pending.id }, `A top-up of ${credits(pending.credits)} is waiting for payment (since ${formatDateTime(pending.createdAt)}).`)
      : h('p', { class: 'muted', id: 'auto-top-up-pending' }, 'No top-up is waiting for payment.'),
  );
  return parts;
}

function autoTopUpCard(app, settings) {
  const state = h('div', { id: 'auto-top-up-state' });
  let auto = settings.autoTopUp;
  const enabled = h('input', { id: 'auto-top-up-enabled', name: 'enabled', type: 'checkbox' });
  const threshold = amountInput('auto-top-up-threshold', 'threshold', auto && auto.threshold);
  const byAmount = h('input', { id: 'auto-top-up-by-amount', name: 'mode', type: 'radio', value: 'amount' });
  const byTarget = h('input', { id: 'auto-top-up-by-target', name: 'mode', type: 'radio', value: 'target' });
  const amount = amountInput('auto-top-up-amount', 'amount', auto && auto.amount);
  const target = amountInput('auto-top-up-target', 'targetBalance', auto && auto.targetBalance);
  const cap = amountInput('auto-top-up-cap', 'monthlyCap', auto && auto.monthlyCap);
  const amountField = field('Credits to buy each time', amount, `Whole credits, at least ${formatCredits(settings.minimumPurchase)}.`);
  const targetField = field('Balance to bring it back to', target, 'Whole credits, above the threshold.');
  const details = h(
    'fieldset',
    { class: 'settings-group', id: 'auto-top-up-details' },
    h('legend', {}, 'Setting'),
    field('Top up when my credits fall under', threshold),
    h(
      'fieldset',
      { class: 'choice' },
      h('legend', {}, 'How much to buy'),
      h('div', { class: 'choice-option' }, byAmount, h('label', { for: 'auto-top-up-by-amount' }, 'A fixed number of credits')),
      h('div', { class: 'choice-option' }, byTarget, h('label', { for: 'auto-top-up-by-target' }, 'Enough to reach a balance')),
    ),
    amountField,
    targetField,
    field('At most per month (credits)', cap, 'What auto top-ups may buy in a calendar month (UTC), whole credits.'),
  );
  const save = h('button', { type: 'submit', class: 'button' }, 'Save auto top-up');
  const line = outcomeLine('auto-top-up-outcome');
  const form = h('form', { id: 'auto-top-up-form', class: 'settings-form', novalidate: true }, h('div', { class: 'check' }, enabled, h('label', { for: 'auto-top-up-enabled' }, 'Top up automatically')), details, h('div', { class: 'actions' }, save), line);

  const fill = (now) => {
    enabled.checked = Boolean(now && now.enabled);
    const target = Boolean(now && now.targetBalance);
    byAmount.checked = !target;
    byTarget.checked = target;
  };
  const sync = () => {
    details.disabled = !enabled.checked;
    amountField.hidden = byTarget.checked;
    targetField.hidden = !byTarget.checked;
  };
  fill(auto);
  sync();
  for (const el of [enabled, byAmount, byTarget]) el.addEventListener('change', sync);
  clear(state).append(...[autoTopUpState(auto)].flat());

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    unmark(form);
    const on = enabled.checked;
    const sized = byTarget.checked ? target : amount;
    if (on) {
      const bad = badAmount([
        [threshold, true],
        [sized, true],
        [cap, true],
      ]);
      if (bad) {
        mark(bad);
        say(app, line, 'Enter each amount as a number of credits, such as 50.', false, 'BAD_USER_INPUT');
        return;
      }
    }
    const input = { accountId: app.accountId, enabled: on };
    if (on) {
      input.threshold = threshold.value.trim();
      input.monthlyCap = cap.value.trim();
      if (byTarget.checked) input.targetBalance = target.value.trim();
      else input.amount = amount.value.trim();
    }
    save.disabled = true;
    try {
      auto = (await app.gql('PortalSetAutoTopUp', { input })).setAutoTopUp;
      clear(state).append(...[autoTopUpState(auto)].flat());
      fill(auto);
      sync();
      say(app, line, on ? 'Auto top-up is on.' : 'Auto top-up is off.', true);
    } catch (error) {
      const message = error.message || '';
      const culprit = [
        ['threshold', threshold],
        ['targetBalance', target],
        ['monthlyCap', cap],
        ['amount', amount],
      ].find(([name]) => message.startsWith(name));
      if (culprit) mark(culprit[1]);
      say(app, line, explain(error, AUTO_NAMES), false, error.code);
    } finally {
      save.disabled = false;
    }
  });

  return h(
    'section',
    { class: 'card', id: 'auto-top-up', 'aria-labelledby': 'auto-top-up-title' },
    h('h2', { id: 'auto-top-up-title' }, 'Auto top-up'),
    h('p', { class: 'muted' }, 'Before your credits run out, buy more with the payment method saved in the app: one purchase at a time, never more than your monthly cap.'),
    state,
    form,
  );
}

// Spend limits.

const LIMIT_NAMES = { maxPerCharge: 'the most per charge' };

function limitName(limit) {
  return limit.feature ? limit.feature : 'All features';
}

function limitsNow(limits) {
  const rows = limits.limits.map((l) =>
    h(
      'tr',
      { 'data-limit': `${l.feature || '*'}:${l.period}`, 'data-exceeded': String(l.exceeded) },
      h('th', { scope: 'row' }, limitName(l)),
      h('td', {}, l.period === 'DAY' ? 'Per day' : 'Per month'),
      h('td', { class: 'num', 'data-field': 'max' }, formatCredits(l.max)),
      h('td', { class: 'num', 'data-field': 'used' }, formatCredits(l.used)),
      h('td', { class: 'num', 'data-field': 'remaining' }, formatCredits(l.remaining)),
      h('td', {}, formatDateTime(l.resetsAt)),
      h('td', {}, l.exceeded ? h('span', { class: 'status status-over' }, 'Over the limit') : h('span', { class: 'status status-on' }, 'Within')),
    ),
  );
  return [
    rows.length
      ? h(
          'div',
          { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Your spend limits now' },
          h(
            'table',
            { class: 'statement-table limits-table', id: 'spend-limits-now' },
            h('caption', { class: 'visually-hidden' }, 'Your spend limits now'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ...['Feature', 'Period', 'Limit', 'Used', 'Left', 'Starts again', 'State'].map((label, i) => h('th', { scope: 'col', class: i >= 2 && i <= 4 ? 'num' : null }, label)),
              ),
            ),
            h('tbody', {}, ...rows),
          ),
        )
      : h('p', { class: 'muted', id: 'spend-limits-none' }, 'No limits per day or month.'),
    h(
      'p',
      { id: 'spend-limits-per-charge', 'data-max': limits.maxPerCharge || '' },
      limits.maxPerCharge ? `One charge may be at most ${credits(limits.maxPerCharge)}.` : 'No maximum per charge.',
    ),
  ];
}

function spendLimitsCard(app, settings) {
  const features = [...new Set((app.program.catalog || []).map((c) => c.feature))];
  const list = h('datalist', { id: 'limit-features' }, ...features.map((f) => h('option', { value: f })));
  const now = h('div', { id: 'spend-limits-state' });
  const rows = h('ol', { class: 'limit-rows', id: 'limit-rows' });
  let next = 0;

  const addRow = (limit) => {
    const n = next++;
    const feature = h('input', { id: `limit-feature-${n}`, name: 'feature', type: 'text', list: 'limit-features', autocomplete: 'off', spellcheck: 'false', maxlength: '64', placeholder: 'All features' });
    feature.value = (limit && limit.feature) || '';
    const period = h('select', { id: `limit-period-${n}`, name: 'period' }, ...PERIODS.map(([value, label]) => h('option', { value, selected: limit ? limit.period === value : value === 'DAY' }, label)));
    const max = amountInput(`limit-max-${n}`, 'max', limit && limit.max);
    const remove = h('button', { type: 'button', class: 'button button-quiet', 'aria-label': `Remove limit ${n + 1}` }, 'Remove');
    const row = h('li', { class: 'limit-row', 'data-row': String(n) }, field('Feature', feature), field('Period (UTC)', period), field('At most (credits)', max), h('div', { class: 'actions' }, remove));
    remove.addEventListener('click', () => {
      const after = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      form.dispatchEvent(new Event('input'));
      (after ? after.querySelector('input') : add).focus();
    });
    rows.append(row);
    return feature;
  };

  const add = h('button', { type: 'button', class: 'button button-quiet', id: 'limit-add' }, 'Add a limit');
  add.addEventListener('click', () => {
    addRow(null).focus();
    form.dispatchEvent(new Event('input'));
  });
  const perCharge = amountInput('spend-limits-max-per-charge', 'maxPerCharge', settings.spendLimits.maxPerCharge);
  const save = h('button', { type: 'submit', class: 'button' }, 'Save spend limits');
  const line = outcomeLine('spend-limits-outcome');
  const form = h(
    'form',
    { id: 'spend-limits-form', class: 'settings-form', novalidate: true },
    h('fieldset', { class: 'settings-group' }, h('legend', {}, 'Limits per day or month'), h('p', { class: 'hint muted' }, 'Leave the feature empty to cap all features together.'), rows, h('div', { class: 'actions' }, add)),
    field('Most one charge may be (credits)', perCharge, 'Empty: no maximum per charge.'),
    h('div', { class: 'actions' }, save),
    line,
  );
  const idempotency = keyed(app, form);
  const draw = (limits) => {
    clear(now).append(...limitsNow(limits));
    clear(rows);
    for (const limit of limits.limits) addRow(limit);
  };
  draw(settings.spendLimits);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    unmark(form);
    const pairs = [...rows.querySelectorAll('input[name="max"]')].map((input) => [input, true]);
    pairs.push([perCharge, false]);
    const bad = badAmount(pairs);
    if (bad) {
      mark(bad);
      say(app, line, 'Enter each limit as a number of credits, such as 50.', false, 'BAD_USER_INPUT');
      return;
    }
    const limits = [...rows.querySelectorAll('.limit-row')].map((row) => ({
      feature: row.querySelector('input[name="feature"]').value.trim() || null,
      period: row.querySelector('select[name="period"]').value,
      max: row.querySelector('input[name="max"]').value.trim(),
    }));
    const input = { accountId: app.accountId, limits, maxPerCharge: perCharge.value.trim() || null, idempotencyKey: idempotency.key() };
    save.disabled = true;
    try {
      const saved = (await app.gql('PortalSetSpendLimits', { input })).setSpendLimits;
      idempotency.settle(null);
      draw(saved);
      say(app, line, saved.limits.length || saved.maxPerCharge ? 'Spend limits saved.' : 'Spend limits cleared.', true);
    } catch (error) {
      idempotency.settle(error);
      if ((error.message || '').includes('maxPerCharge')) mark(perCharge);
      say(app, line, explain(error, LIMIT_NAMES), false, error.code);
    } finally {
      save.disabled = false;
    }
  });

  return h(
    'section',
    { class: 'card', id: 'spend-limits', 'aria-labelledby': 'spend-limits-title' },
    h('h2', { id: 'spend-limits-title' }, 'Spend limits'),
    h(
      'p',
      { class: 'muted' },
      'Caps you set on what may be charged, per feature or for all features, per UTC day or month. A charge that would pass one is refused. Usage that already happened (such as running time) is still charged, and the limit then shows as over.',
    ),
    now,
    list,
    form,
  );
}

// Sending credits.

function giftRules(gifts) {
  const parts = [`up to ${credits(gifts.dailyLimit)} a day`];
  if (gifts.maxPerGift) parts.push(`${credits(gifts.maxPerGift)} per gift`);
  if (gifts.dailyCount) parts.push(`${gifts.dailyCount} gift${gifts.dailyCount === 1 ? '' : 's'} a day`);
  return `You can give ${parts.join(', ')}.`;
}

function giftCard(app) {
  const gifts = app.program.gifts;
  const to = h('input', { id: 'gift-to', name: 'toAccount', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '128', required: true });
  const amount = amountInput('gift-amount', 'amount', '');
  amount.required = true;
  const note = h('textarea', { id: 'gift-note', name: 'note', rows: '2', maxlength: '500' });
  const send = h('button', { type: 'submit', class: 'button' }, 'Send credits');
  const line = outcomeLine('gift-outcome');
  const form = h(
    'form',
    { id: 'gift-form', class: 'settings-form', novalidate: true },
    field('Recipient’s account', to, 'The account id the app shows them.'),
    field('Credits to give', amount),
    field('Note (optional)', note, 'Shown in both histories.'),
    h('div', { class: 'actions' }, send),
    line,
  );
  const idempotency = keyed(app, form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    unmark(form);
    if (!to.value.trim()) {
      mark(to);
      say(app, line, 'Enter the account to send credits to.', false, 'BAD_USER_INPUT');
      return;
    }
    const text = amount.value.trim();
    if (!AMOUNT.test(text) || /^0(\.0*)?$/.test(text)) {
      mark(amount);
      say(app, line, 'Enter a number of credits more than 0, such as 25.', false, 'BAD_USER_INPUT');
      return;
    }
    const input = { toAccount: to.value.trim(), amount: text, note: note.value.trim() || null, idempotencyKey: idempotency.key() };
    send.disabled = true;
    try {
      const gift = (await app.gql('PortalGiftCredits', { input })).giftCredits;
      idempotency.settle(null);
      form.reset();
      say(app, line, `Sent ${credits(gift.amount)} to ${gift.toAccount}. You have ${credits(gift.balanceAfter)} left.`, true);
    } catch (error) {
      idempotency.settle(error);
      if (error.code === 'NOT_FOUND' || (error.message || '').includes('another account')) mark(to);
      else if (error.code === 'INSUFFICIENT_CREDITS' || (error.message || '').startsWith('amount')) mark(amount);
      const retry = outcomeUnknown(error) ? ' Send again: it will not be sent twice.' : '';
      say(app, line, `${explain(error)}${retry}`, false, error.code);
    } finally {
      send.disabled = false;
    }
  });
  return h(
    'section',
    { class: 'card', id: 'gift', 'aria-labelledby': 'gift-title' },
    h('h2', { id: 'gift-title' }, 'Send credits'),
    h('p', { class: 'muted', id: 'gift-rules' }, 'Give some of your purchased credits to another account; they keep their expiry date. ', giftRules(gifts), ' A gift cannot be taken back.'),
    form,
  );
}

export async function render(root, app) {
  const data = await app.gql('PortalSettings');
  const settings = { autoTopUp: data.me.autoTopUp, spendLimits: data.me.spendLimits, minimumPurchase: data.program.minimumPurchase };
  root.append(
    h('h1', {}, 'Settings'),
    h('div', { class: 'grid' }, autoTopUpCard(app, settings), app.program.gifts ? giftCard(app) : null),
    spendLimitsCard(app, settings),
  );
}
