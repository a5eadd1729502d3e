// Connections to Temporal (embedded dev server or a production cluster, with TLS or an API key)
// and the namespace setup the project needs there.
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { SearchAttributeKey } from '../workflows/search-attributes';
import { type Config, temporalAddress } from '../runtime/config';

/** Address and credentials for Temporal, shared by the client and the worker's native connection. */
export async function temporalConnectionOptions(config: Config) {
  const { tls, apiKey } = config.temporal;
  return {
    address: temporalAddress(config),
    apiKey,
    tls: tls
      ? {
          serverNameOverride: tls.serverName,
          serverRootCACertificate: tls.caPath ? await readFile(tls.caPath) : undefined,
          clientCertPair:
            tls.certPath && tls.keyPath
              ? { crt: await readFile(tls.certPath), key: await readFile(tls.keyPath) }
              : undefined,
        }
      : undefined,
  };
}

export async function connectTemporal(config: Config): Promise<Connection> {
  // A CLI user waiting on a server that is not there should hear about it in seconds.
  return Connection.connect({ ...(await temporalConnectionOptions(config)), connectTimeout: '5 seconds' });
}

export function temporalClient(connection: Connection, config: Config): Client {
  return new Client({ connection, namespace: config.temporal.namespace });
}

/**
 * Registers the project's search attributes on the namespace if they are missing. The dev server's
 * --search-attribute flag only applies to a new database file, and clusters never get it.
 */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  keys: SearchAttributeKey[],
): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = { ...existing.customAttributes, ...existing.systemAttributes };
  const missing = keys.filter((key) => !(key.name in known));
  if (missing.length === 0) return [];
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((key) => [key.name, temporal.api.enums.v1.IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}`]]),
    ),
  });
  return missing.map((key) => key.name);
}
