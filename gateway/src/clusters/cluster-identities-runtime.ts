import { randomUUID } from 'node:crypto';
import { asKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { clustersFilePath } from '../adapters/clusters/clusters-file.js';
import { FileClusterIdentities } from '../adapters/clusters/file-cluster-identities.js';
import type { AuditOperation, AuditSink } from '../core/audit/audit-event.js';
import type { IdentityInput } from '../core/auth/identity-directory.js';

/**
 * Token mode on the file store: the config's identities plus clusters.json beside the key store
 * file, followed while the gateway runs (docs/clusters.md).
 */
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
          subject: change.changedBy ?? 'cli',
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
