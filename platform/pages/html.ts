// HTML that is escaped by construction: `html` is a tagged template that escapes every interpolated
// value unless it is itself html (a SafeHtml), so text from people (titles, comments, handles) can
// only ever appear as text. No template engine: pages are plain TypeScript functions.

/** Markup that is already safe: made only by `html` (or from constants of our own). */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** What a page may interpolate: text (escaped), html, lists of either, or nothing. */
export type Renderable = SafeHtml | string | number | bigint | boolean | null | undefined | readonly Renderable[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: Renderable): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  // false renders nothing, so `${cond && html`...`}` reads naturally.
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Renderable[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** A URL path from segments, each percent-encoded (a file path keeps its slashes). */
export function pathOf(...segments: string[]): string {
  return '/' + segments.map((s) => s.split('/').map(encodeURIComponent).join('/')).join('/');
}
