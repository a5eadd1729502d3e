// The Content-Disposition of every file the platform sends (recordings, files of checkpoints): an
// attachment named as its owner named it. A header is Latin-1 at most, so a name with other
// characters (`会話–1.webm`) goes as RFC 5987's `filename*=UTF-8''…`, percent-encoded, beside an
// ASCII `filename` for clients that know only that (RFC 6266 §4.3); quotes, backslashes and control
// characters never reach the header, so no name can end it or add another.
const ATTR_CHAR = /[A-Za-z0-9!#$&+.^_`|~-]/;

export function attachmentDisposition(filename: string): string {
  if (filename === '') return 'attachment; filename="download"';
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_') || 'download';
  if (fallback === filename) return `attachment; filename="${fallback}"`;
  let encoded = '';
  for (const byte of Buffer.from(filename, 'utf8')) {
    const char = String.fromCharCode(byte);
    // Control characters are dropped for `_`; every other byte that is not an attr-char is escaped.
    if (byte < 0x20 || byte === 0x7f) encoded += '_';
    else encoded += ATTR_CHAR.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
