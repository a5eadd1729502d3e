// Opens the configured checkpoint store.
import { readFile } from 'node:fs/promises';
import type { Config } from '../runtime/config';
import { LayoutStore } from './layout';
import { RegistryStore } from './registry';
import type { CheckpointStore } from './types';

export async function openStore(settings: Config['store']): Promise<CheckpointStore> {
  if (settings.kind === 'layout') return new LayoutStore(settings.path).init();
  const password =
    settings.password ?? (settings.passwordFile ? (await readFile(settings.passwordFile, 'utf8')).trim() : undefined);
  return new RegistryStore({ url: settings.url, username: settings.username, password });
}
