// Opens the configured checkpoint store.
import { readFile } from 'node:fs/promises';
import type { Config } from '../runtime/config';
import { LayoutStore } from './layout';
import { RegistryStore, registryAuthorization } from './registry';
import type { CheckpointStore } from './types';

type RegistrySettings = Extract<Config['store'], { kind: 'registry' }>;

export async function openStore(settings: Config['store']): Promise<CheckpointStore> {
  if (settings.kind === 'layout') return new LayoutStore(settings.path).init();
  return new RegistryStore({ url: settings.url, ...(await registryLogin(settings)) });
}

/** The configured registry's user and password, the password read from its file when it is mounted as one. */
async function registryLogin(settings: RegistrySettings): Promise<{ username?: string; password?: string }> {
  const password =
    settings.password ?? (settings.passwordFile ? (await readFile(settings.passwordFile, 'utf8')).trim() : undefined);
  return {
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}

/**
 * The Authorization header for reading from `url` when it is the configured registry (a pod pulling
 * its checkpoint, `pull --from <registry>`); undefined for any other address, which never gets the
 * registry's credentials.
 */
export async function registryAuthorizationFor(settings: Config['store'], url: string): Promise<string | undefined> {
  if (settings.kind !== 'registry' || new URL(url).origin !== new URL(settings.url).origin) return undefined;
  return registryAuthorization(await registryLogin(settings));
}
