// Accounts on the platform: sign up and sign in with a password (scrypt from node:crypto, a random
// salt per account, compared in constant time), browser sessions and personal API tokens. Session
// and token secrets are random 256-bit values handed out once; only their sha256 is stored, so a
// leaked database opens no session.
import {
  createHash,
  randomBytes,
  randomUUID,
  scrypt as scryptCallback,
  type ScryptOptions,
  timingSafeEqual,
} from 'node:crypto';
import { Prisma } from '@prisma/client';
import type { Database } from '../db/prisma';
import { PlatformError, AccountError } from './errors';
import { ACCOUNT_HANDLE, ACCOUNT_HANDLE_RULE, trainerNamespace } from '../workflows/names';

export type Role = 'public' | 'trainer' | 'operator';

export interface AccountView {
  id: string;
  handle: string;
  email: string;
  role: Exclude<Role, 'public'>;
}

/** Who is asking: anyone (public), or a signed-in account. */
export interface Caller {
  role: Role;
  account?: AccountView;
}

export const PUBLIC: Caller = { role: 'public' };

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,}$/;
export const MIN_PASSWORD = 10;
/** Enough for any passphrase; longer input is refused before scrypt ever sees it (hashing is the cost an attacker would pick). */
export const MAX_PASSWORD = 200;

// N = 2^15, r = 8: about 32 MiB and tens of milliseconds per hash (OWASP's scrypt floor is 2^17 with
// r = 8 and p = 1 at about 128 MiB; 2^15 keeps sign-ins cheap on a small host and can be raised:
// the parameters are stored with each hash).
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keyLength: 32 };

function scrypt(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT.keyLength, {
    N: SCRYPT.N,
    r: SCRYPT.r,
    p: SCRYPT.p,
    maxmem: 256 * SCRYPT.N * SCRYPT.r,
  });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 256 * Number(n) * Number(r),
  });
  return timingSafeEqual(actual, expected);
}

const sha256 = (secret: string) => createHash('sha256').update(secret).digest('hex');
const secret = (prefix: string) => `${prefix}${randomBytes(32).toString('base64url')}`;

function view(account: { id: string; handle: string; email: string; role: string }): AccountView {
  return {
    id: account.id,
    handle: account.handle,
    email: account.email,
    role: account.role === 'operator' ? 'operator' : 'trainer',
  };
}

/** Refuses a password too long to be one, before any hashing; sign-up and sign-in both call it. */
function refuseOverlongPassword(password: string): void {
  if (password.length > MAX_PASSWORD)
    throw new AccountError('INVALID_INPUT', `a password is at most ${MAX_PASSWORD} characters`);
}

/** The rules a new password meets, wherever one is set. */
function checkNewPassword(password: string): void {
  refuseOverlongPassword(password);
  if (password.length < MIN_PASSWORD)
    throw new AccountError('INVALID_INPUT', `a password is at least ${MIN_PASSWORD} characters`);
}

export async function signUp(
  db: Database,
  input: { handle: string; email: string; password: string },
): Promise<AccountView> {
  const handle = String(input.handle ?? '').trim();
  const email = String(input.email ?? '')
    .trim()
    .toLowerCase();
  const password = String(input.password ?? '');
  if (!ACCOUNT_HANDLE.test(handle)) throw new AccountError('INVALID_INPUT', ACCOUNT_HANDLE_RULE);
  if (!EMAIL.test(email)) throw new AccountError('INVALID_INPUT', `"${email}" is not an email address`);
  checkNewPassword(password);
  try {
    const account = await db.account.create({
      data: { id: randomUUID(), handle, email, passwordHash: await hashPassword(password) },
    });
    return view(account);
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
      const field = String((error.meta as { target?: unknown } | undefined)?.target ?? '');
      if (field.includes('email'))
        throw new AccountError('EMAIL_TAKEN', 'an account with this email exists already: sign in instead');
      throw new AccountError('HANDLE_TAKEN', `the handle ${handle} is taken: choose another`);
    }
    throw error;
  }
}

/** The same answer for an unknown login and a wrong password, so sign-in does not reveal who has an account. */
export async function signIn(db: Database, input: { login: string; password: string }): Promise<AccountView> {
  const login = String(input.login ?? '')
    .trim()
    .toLowerCase();
  const password = String(input.password ?? '');
  // Before the account is looked up: the answer is the same whoever the login names.
  refuseOverlongPassword(password);
  const account = await db.account.findFirst({ where: login.includes('@') ? { email: login } : { handle: login } });
  const ok = account
    ? await verifyPassword(password, account.passwordHash)
    : await hashPassword('timing: as slow as a real check').then(() => false);
  if (!account || !ok) throw new AccountError('BAD_CREDENTIALS', 'wrong handle, email or password');
  return view(account);
}

export const SESSION_DAYS = 30;

export async function createSession(db: Database, accountId: string): Promise<{ secret: string; expiresAt: Date }> {
  const value = secret('');
  const expiresAt = new Date(Date.now() + SESSION_DAYS * 86_400_000);
  await db.session.create({ data: { id: sha256(value), accountId, expiresAt } });
  return { secret: value, expiresAt };
}

export async function sessionCaller(db: Database, value: string): Promise<Caller | undefined> {
  const session = await db.session.findUnique({ where: { id: sha256(value) }, include: { account: true } });
  if (!session) return undefined;
  if (session.expiresAt.getTime() <= Date.now()) {
    await db.session.delete({ where: { id: session.id } }).catch(() => undefined);
    return undefined;
  }
  const account = view(session.account);
  return { role: account.role, account };
}

export async function endSession(db: Database, value: string): Promise<void> {
  await db.session.deleteMany({ where: { id: sha256(value) } });
}

export const TOKEN_PREFIX = 'ctr_';

/** A personal API token: returned once, stored as its sha256. */
export async function createApiToken(
  db: Database,
  accountId: string,
  name: string,
): Promise<{ id: string; name: string; token: string }> {
  const label = String(name ?? '').trim();
  if (!label || label.length > 100)
    throw new AccountError('INVALID_INPUT', 'a token needs a name of at most 100 characters, e.g. "laptop cli"');
  const token = secret(TOKEN_PREFIX);
  const id = randomUUID();
  await db.apiToken.create({ data: { id, accountId, name: label, tokenHash: sha256(token) } });
  return { id, name: label, token };
}

export async function tokenCaller(db: Database, token: string): Promise<Caller | undefined> {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  const found = await db.apiToken.findUnique({ where: { tokenHash: sha256(token) }, include: { account: true } });
  if (!found) return undefined;
  // Written at most once a minute: a pull sends the token with every blob request.
  if (!found.lastUsedAt || Date.now() - found.lastUsedAt.getTime() > 60_000) {
    await db.apiToken.update({ where: { id: found.id }, data: { lastUsedAt: new Date() } });
  }
  const account = view(found.account);
  return { role: account.role, account };
}

/** Operators are made by someone with the database at hand (`computatrum account role <handle> operator`). */
export async function setRole(db: Database, handle: string, role: 'trainer' | 'operator'): Promise<AccountView> {
  const account = await db.account.update({ where: { handle }, data: { role } }).catch(() => undefined);
  if (!account) throw new AccountError('INVALID_INPUT', `no account ${handle}`);
  return view(account);
}

/**
 * Refuses `account` writing to `repository` outside its own namespace (`what` says who may do what,
 * e.g. "you can fork"); with `operatorsAnywhere`, operators may write anywhere.
 */
export function assertOwnRepository(
  account: AccountView,
  repository: string,
  what: string,
  options: { operatorsAnywhere?: boolean } = {},
): void {
  if (options.operatorsAnywhere && account.role === 'operator') return;
  const own = trainerNamespace(account.handle);
  if (!repository.startsWith(own) || repository.length === own.length)
    throw new PlatformError('FORBIDDEN', `${what} only under ${own}, not ${repository || 'nowhere'}`);
}
