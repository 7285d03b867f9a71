import { randomUUID } from 'node:crypto';
import { asKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { clustersFilePath } from '../adapters/clusters/clusters-file.js';
import { FileClusterIdentities } from '../adapters/clusters/file-cluster-identities.js';
import { fileStore, type GatewayConfig } from '../config.js';
import type { AuditOperation, AuditSink } from '../core/audit/audit-event.js';
import { IdentityDirectory, type IdentityInput } from '../core/auth/identity-directory.js';
import type { IdentitySource } from '../core/auth/identity-source.js';

/** The identities of the config file, as the gateway's token mode uses them. */
export interface ConfigIdentities {
  readonly source: IdentitySource;
  /** File store: audits each change of clusters.json in `sink`. */
  readonly auditTo?: ((sink: AuditSink) => void) | undefined;
  /** File store: calls `fn` with each cluster removed from clusters.json (its fleet nodes go too). */
  readonly onRemoved?: ((fn: (name: string) => void) => void) | undefined;
  close(): void;
}

/**
 * The config's `identities:` (undefined without them). On the file store, plus the clusters of
 * clusters.json beside the key store file, followed while the gateway runs (docs/clusters.md).
 */
export function configIdentities(
  config: GatewayConfig,
  logger: Logger | undefined,
): ConfigIdentities | undefined {
  if (config.identities === undefined) return undefined;
  const storeFile = fileStore(config)?.file;
  if (storeFile === undefined)
    return { source: new IdentityDirectory(config.identities), close: () => undefined };
  const clusters = startClusterIdentities(config.identities, storeFile, logger);
  let stopAudit: (() => void) | undefined;
  const stops: (() => void)[] = [];
  return {
    source: clusters,
    onRemoved: (fn) => {
      stops.push(
        clusters.onChange((change) => {
          for (const r of change.removed) if (!change.added.some((a) => a.name === r.name)) fn(r.name);
        }),
      );
    },
    auditTo: (sink) => {
      stopAudit = auditClusterChanges(clusters, sink, logger);
    },
    close: () => {
      stopAudit?.();
      for (const stop of stops) stop();
      clusters.close();
    },
  };
}

/** Token mode on the file store: the config's identities plus clusters.json, followed. */
export function startClusterIdentities(
  configured: readonly IdentityInput[],
  storeFile: string,
  logger: Logger | undefined,
): FileClusterIdentities {
  const log = (logger ?? createLogger({ level: 'silent', name: 'keygate-gateway' })).child({
    component: 'clusters',
  });
  const source = new FileClusterIdentities({ configured, file: clustersFilePath(storeFile), logger: log });
  source.start();
  return source;
}

/**
 * Audits each applied change of clusters.json as `cluster.add` / `cluster.remove` (target: the
 * cluster; subject: who ran the command, as the file says). The gateway is the audit log's one
 * writer, so it records what the CLI changed.
 */
export function auditClusterChanges(
  source: FileClusterIdentities,
  sink: AuditSink,
  logger?: Logger,
): () => void {
  return source.onChange((change) => {
    const records: [AuditOperation, string][] = [
      ...change.removed
        .filter((r) => !change.added.some((a) => a.name === r.name))
        .map((r): [AuditOperation, string] => ['cluster.remove', r.name]),
      ...change.added.map((a): [AuditOperation, string] => ['cluster.add', a.name]),
    ];
    for (const [operation, target] of records) {
      const c = change.added.find((a) => a.name === target);
      sink
        .append({
          time: new Date().toISOString(),
          requestId: randomUUID(),
          subject: c?.addedBy ?? change.changedBy ?? 'cli',
          operation,
          outcome: 'success',
          target,
          instance: c?.instance,
          keyId: c?.crk,
          latencyMs: 0,
        })
        .catch((err: unknown) =>
          logger?.error(
            { err: asKeygateError(err).toLog(), operation, target },
            'cluster audit append failed',
          ),
        );
    }
  });
}
