// Anonymous visitors: known by a salted hash of their address, never by the address itself. The
// gateway stores it with their exchanges, and feedback recognises them by it; both ask here, with the
// platform's one salt (COMPUTATRUM_VISITOR_SALT, or <data>/visitor-salt), so the ids agree.
import { createHash } from 'node:crypto';

/** The visitor id of an address, under `salt`. */
export function visitorIds(salt: string): (address: string) => string {
  return (address) => createHash('sha256').update(`${salt}\0${address}`).digest('hex').slice(0, 32);
}
