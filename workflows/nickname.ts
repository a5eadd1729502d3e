// Human-style nicknames for daily checkpoints ("Amber Ada"), derived from the day and the digest.
// Pure and deterministic; the caller keeps them unique by taking the first candidate no other day holds.

const ADJECTIVES = [
  'Amber',
  'Brave',
  'Bright',
  'Calm',
  'Clever',
  'Cobalt',
  'Curious',
  'Dapper',
  'Eager',
  'Fearless',
  'Gentle',
  'Golden',
  'Hardy',
  'Honest',
  'Jolly',
  'Keen',
  'Kind',
  'Lively',
  'Lucid',
  'Mellow',
  'Merry',
  'Nimble',
  'Noble',
  'Patient',
  'Plucky',
  'Quiet',
  'Radiant',
  'Rapid',
  'Rustic',
  'Sage',
  'Scarlet',
  'Serene',
  'Sharp',
  'Silver',
  'Sincere',
  'Steady',
  'Sunny',
  'Swift',
  'Tidy',
  'Tranquil',
  'Valiant',
  'Vivid',
  'Warm',
  'Wise',
  'Witty',
  'Zealous',
  'Azure',
  'Cheerful',
];

const NAMES = [
  'Ada',
  'Alan',
  'Alonzo',
  'Barbara',
  'Blaise',
  'Carl',
  'Claude',
  'Dennis',
  'Donald',
  'Edsger',
  'Emmy',
  'Euclid',
  'Frances',
  'Grace',
  'Hedy',
  'Hypatia',
  'Isaac',
  'Jean',
  'Johanna',
  'John',
  'Katherine',
  'Ken',
  'Kurt',
  'Leslie',
  'Lise',
  'Margaret',
  'Marie',
  'Mary',
  'Niklaus',
  'Noether',
  'Radia',
  'Richard',
  'Rosalind',
  'Shafi',
  'Sophie',
  'Srinivasa',
  'Tim',
  'Tony',
  'Vera',
  'Wendy',
  'Yann',
  'Yoshua',
  'Zuse',
  'Ida',
  'Leonhard',
  'Emil',
  'Hilbert',
  'Sofia',
];

/** FNV-1a, 32 bits: small, stable across platforms, good enough to spread names. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The n-th nickname candidate for a day's checkpoint; candidate 0 is the one normally used. */
export function nicknameCandidate(day: string, digest: string, attempt: number): string {
  const hash = fnv1a(`${day}|${digest}|${attempt}`);
  return `${ADJECTIVES[hash % ADJECTIVES.length]} ${NAMES[Math.floor(hash / ADJECTIVES.length) % NAMES.length]}`;
}

/** How many distinct nicknames exist. */
export const NICKNAME_SPACE = ADJECTIVES.length * NAMES.length;
