import { userInfo } from 'node:os';
import { systemRandom } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import { generateApiKey } from '../../core/auth/api-key.js';
import type { IdentityInput } from '../../core/auth/identity-directory.js';
import {
  type ClusterRecord,
  type ClusterRegistry,
  clusterCertIdentity,
  type RegisteredCluster,
} from '../../core/clusters/cluster.js';
import { changeClustersFile, readClustersFile, toClusterRecord } from './clusters-file.js';

/**
 * Clusters in clusters.json (file store, token mode): the CLI side. The running gateway follows the
 * file (FileClusterIdentities), so an add takes effect and a remove revokes without a restart.
 */
export class FileClusterRegistry implements ClusterRegistry {
  readonly #file: string;
  readonly #configured: readonly IdentityInput[];

  constructor(file: string, configured: readonly IdentityInput[]) {
    this.#file = file;
    this.#configured = configured;
  }

  async taken(): Promise<{ names: ReadonlySet<string>; certIdentities: ReadonlySet<string> }> {
    const { clusters } = await readClustersFile(this.#file);
    return {
      names: new Set([...this.#configured.map((c) => c.name), ...clusters.map((c) => c.name)]),
      certIdentities: new Set([
        ...this.#configured.flatMap((c) => c.certIdentities),
        ...clusters.map((c) => clusterCertIdentity(c.name)),
      ]),
    };
  }

  async list(): Promise<readonly ClusterRecord[]> {
    return (await readClustersFile(this.#file)).clusters.map(toClusterRecord);
  }

  async get(name: string): Promise<ClusterRecord | undefined> {
    const c = (await readClustersFile(this.#file)).clusters.find((x) => x.name === name);
    return c === undefined ? undefined : toClusterRecord(c);
  }

  async add(record: ClusterRecord): Promise<RegisteredCluster> {
    if (this.#configured.some((c) => c.name === record.name))
      throw new KeygateError('CLUSTER_EXISTS', {
        detail: { name: record.name, reason: 'an identity in the gateway config' },
      });
    const { apiKey, hash } = generateApiKey(systemRandom);
    await changeClustersFile(this.#file, (current) => {
      if (current.clusters.some((c) => c.name === record.name))
        throw new KeygateError('CLUSTER_EXISTS', { detail: { name: record.name } });
      return {
        version: 1,
        changedBy: changedBy(),
        clusters: [
          ...current.clusters,
          {
            ...record,
            roles: [...record.roles],
            gatewayUrls: [...record.gatewayUrls],
            apiKeyHashes: [hash],
            addedBy: changedBy(),
          },
        ],
      };
    });
    return { record, apiKey };
  }

  async remove(name: string): Promise<void> {
    await changeClustersFile(this.#file, (current) => {
      if (!current.clusters.some((c) => c.name === name))
        throw new KeygateError('CLUSTER_NOT_FOUND', { detail: { name } });
      return {
        version: 1,
        changedBy: changedBy(),
        clusters: current.clusters.filter((c) => c.name !== name),
      };
    });
  }

  async close(): Promise<void> {}
}

/** `cli:<os user>`: who ran the command, for the gateway's audit record. */
export function changedBy(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}
