// Coupons: every coupon (`coupons`, newest first, paged) with its redemptions and what is left
// under its cap, and a form to create one (`createCoupon`, idempotent on the code).
import { clear, formatCredits, formatDateTime, h } from '../../../portal/js/dom.js';
import { pagedList } from '../../../portal/js/pager.js';
import { act, field, outcome, table } from '../ui.js';

const PAGE = 20;

/** A `datetime-local` value (the operator's time zone) as an RFC 3339 instant, or null. */
function instant(value) {
  return value ? new Date(value).toISOString() : null;
}

function createForm(app, list) {
  const input = (id, name, attrs = {}) => h('input', { id, name, type: 'text', autocomplete: 'off', ...attrs });
  const code = input('coupon-code', 'code', { required: true, minlength: '3', maxlength: '64', pattern: '[A-Za-z0-9_\\-]{3,64}' });
  const credits = input('coupon-credits', 'credits', { required: true, inputmode: 'decimal' });
  const cap = input('coupon-cap', 'maxRedemptions', { type: 'number', min: '1', step: '1' });
  const validFor = input('coupon-valid-for', 'validFor', { placeholder: '30 days' });
  const startsAt = input('coupon-starts', 'startsAt', { type: 'datetime-local' });
  const endsAt = input('coupon-ends', 'endsAt', { type: 'datetime-local' });
  const reason = input('coupon-reason', 'reason', { maxlength: '500' });
  const button = h('button', { type: 'submit', class: 'button' }, 'Create coupon');
  const line = outcome('coupon-outcome');
  const form = h(
    'form',
    { class: 'filters', id: 'coupon-form', 'aria-labelledby': 'coupon-form-title' },
    field('Code', code),
    field('Credits each', credits),
    field('Most redemptions', cap, 'Empty: no cap'),
    field('Credits valid for', validFor, 'Empty: never expire'),
    field('Redeemable from', startsAt),
    field('Redeemable until', endsAt),
    field('Reason', reason),
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act(app, button, line, async () => {
      const created = (
        await app.gql('ConsoleCreateCoupon', {
          input: {
            code: code.value.trim(),
            credits: credits.value.trim(),
            maxRedemptions: cap.value ? Number(cap.value) : null,
            validFor: validFor.value.trim() || null,
            startsAt: instant(startsAt.value),
            endsAt: instant(endsAt.value),
            reason: reason.value.trim() || null,
          },
        })
      ).createCoupon;
      form.reset();
      await list.reset();
      return `Coupon ${created.code} created.`;
    });
  });
  return h('section', { class: 'card', id: 'create-coupon' }, h('h2', { id: 'coupon-form-title' }, 'Create a coupon'), form, line);
}

export async function render(root, app) {
  const list = pagedList({
    name: 'Coupons',
    pageSize: PAGE,
    empty: 'No coupons yet.',
    fetch: async (args) => (await app.gql('ConsoleCoupons', args)).coupons,
    show: (nodes) =>
      table(
        'Coupons',
        ['Code', ['Credits', { num: true }], ['Redeemed', { num: true }], ['Left', { num: true }], 'Window', 'Credits last', 'Created'],
        nodes.map((c) => ({
          attrs: { 'data-coupon': c.code },
          cells: [
            h('code', {}, c.code),
            formatCredits(c.credits),
            String(c.redemptions),
            c.maxRedemptions == null ? 'No cap' : `${c.remainingRedemptions} of ${c.maxRedemptions}`,
            `${c.startsAt ? formatDateTime(c.startsAt) : 'From creation'} – ${c.endsAt ? formatDateTime(c.endsAt) : 'no end'}`,
            c.validFor || (c.expiresAt ? `Until ${formatDateTime(c.expiresAt)}` : 'Forever'),
            formatDateTime(c.createdAt),
          ],
        })),
      ),
  });
  clear(root).append(h('h1', {}, 'Coupons'), createForm(app, list), h('section', { class: 'card', id: 'coupons' }, list.element));
  await list.reset();
}
