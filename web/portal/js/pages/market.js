// The Market page: written by the pages helper (issue 22); a placeholder until then.
import { h } from '../dom.js';
export async function render(root) { root.append(h('h1', {}, 'Market'), h('p', {}, 'Coming soon.')); }
