// The pages' one script, read once: the zookeeper's chat, which streams an instance's answer as it
// comes (the chat page works without it, as a form). Its URL carries its hash, so browsers may cache
// it for a year; only the page that names it may run it (view.ts, its Content-Security-Policy).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { projectPath } from '../../runtime/paths';

export const CHAT_SCRIPT = readFileSync(projectPath('platform', 'pages', 'assets', 'chat.js'));
const hash = createHash('sha256').update(CHAT_SCRIPT).digest('hex');
export const CHAT_SCRIPT_ETAG = `"${hash.slice(0, 16)}"`;
export const CHAT_SCRIPT_PATH = '/assets/chat.js';
export const CHAT_SCRIPT_URL = `${CHAT_SCRIPT_PATH}?v=${hash.slice(0, 8)}`;
