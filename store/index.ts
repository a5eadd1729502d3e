// Opens the configured checkpoint store.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../runtime/config';
import { LayoutStore } from './layout';
import { RegistryStore } from './registry';
import { RegistryAuth } from './registry-auth';
import type { CheckpointStore } from './types';

type RegistrySettings = Extract<Config['store'], { kind: 'registry' }>;

export async function openStore(
  settings: Config['store'],
  options: { logger?: Pick<Logger, 'debug'> } = {},
): Promise<CheckpointStore> {
  if (settings.kind === 'layout') return new LayoutStore(settings.path).init();
  return new RegistryStore({ url: settings.url, ...(await registryLogin(settings)), ...options });
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
 * The registry login for reading from `url` when it is the configured registry (a pod pulling its
 * checkpoint, `pull --from <registry>`): its credentials, sent as Basic or exchanged for a token;
 * undefined for any other address, which never gets the registry's credentials.
 */
export async function registryAuthFor(settings: Config['store'], url: string): Promise<RegistryAuth | undefined> {
  if (settings.kind !== 'registry' || new URL(url).origin !== new URL(settings.url).origin) return undefined;
  return new RegistryAuth({ url, ...(await registryLogin(settings)) });
}
