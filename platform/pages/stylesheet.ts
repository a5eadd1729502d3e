// The pages' one stylesheet, read once; its URL carries its hash, so browsers may cache it for a year.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { projectPath } from '../../runtime/paths';

export const STYLESHEET = readFileSync(projectPath('platform', 'pages', 'assets', 'site.css'));
const hash = createHash('sha256').update(STYLESHEET).digest('hex');
export const STYLESHEET_ETAG = `"${hash.slice(0, 16)}"`;
export const STYLESHEET_URL = `/assets/site.css?v=${hash.slice(0, 8)}`;
