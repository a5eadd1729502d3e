// Names and digests as the OCI Distribution spec defines them, checked before any I/O.
import { StoreError } from './types';
import { REPOSITORY } from '../workflows/names';

const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function assertRepository(repo: string): void {
  if (!REPOSITORY.test(repo) || repo.length > 255) {
    throw new StoreError(
      'NAME_INVALID',
      `"${repo}" is not a repository name: use lowercase path segments like germline/computatrum`,
    );
  }
}

export function assertTag(tag: string): void {
  if (!TAG.test(tag))
    throw new StoreError(
      'NAME_INVALID',
      `"${tag}" is not a tag: letters, digits, _ . - (up to 128), like main or gpc-2026-11-25`,
    );
}

export function assertDigest(digest: string): void {
  if (!DIGEST.test(digest))
    throw new StoreError('DIGEST_INVALID', `"${digest}" is not a sha256 digest (sha256:<64 hex digits>)`);
}

export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

/** `repo:ref` or `repo@sha256:...` as people type it. */
export function parseReference(text: string): { repo: string; reference: string } {
  const at = text.indexOf('@');
  const colon = text.lastIndexOf(':');
  const [repo, reference] =
    at > 0
      ? [text.slice(0, at), text.slice(at + 1)]
      : colon > 0
        ? [text.slice(0, colon), text.slice(colon + 1)]
        : [text, ''];
  if (!reference)
    throw new StoreError('NAME_INVALID', `"${text}" needs a tag or digest: write it like germline/computatrum:main`);
  assertRepository(repo);
  if (isDigest(reference)) return { repo, reference };
  assertTag(reference);
  return { repo, reference };
}
