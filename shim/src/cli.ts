#!/usr/bin/env node
import { describeConfigError, isKeygateError, systemClock, systemRandom } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { z } from 'zod';
import { loadShimSettings, type ShimSettings } from './config.js';
import { KmsCore } from './core/kms-core.js';
import { UndiciGatewayClient } from './gateway-client/undici-gateway.js';
import { normaliseSocketPath } from './grpc/socket-file.js';
import { gatewayClientOptions, runShim } from './main.js';

// zod 4 compiles a parser per object schema with new Function() on its first parse. The shim
// process parses its config once and a few small gateway answers: compiling costs more than it
// saves, and it sits on the start path (restart -> first Decrypt, docs/benchmarks.md "Issue 21").
// Set here, in the process's entry, not in a module that tests and the bench import with the
// gateway's code in the same process.
z.config({ jitless: true });

const USAGE = `usage: keygate-shim <command> [options]
  serve   --config FILE            run the KMS plugin on UNIX_SOCKET_PATH
  check   --config FILE            validate the config, get a token, wrap and unwrap through the gateway
  encrypt --socket PATH [--v1]     encrypt stdin through a running shim; prints "<key_id> <base64>" (v2) or base64 (v1)
  decrypt --socket PATH [--v1] [--key-id ID]
                                   decrypt base64 (or "<key_id> <base64>") from stdin to stdout
  status  --socket PATH            print the v2 Status of a running shim`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function settingsOrExit(args: string[]): ShimSettings | undefined {
  const file = flag(args, '--config');
  if (!file) {
    console.error('--config FILE is required');
    return undefined;
  }
  try {
    return loadShimSettings(file);
  } catch (err) {
    if (isKeygateError(err) && err.code === 'CONFIG_INVALID') console.error(describeConfigError(err));
    else console.error(`cannot load ${file}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

async function check(settings: ShimSettings): Promise<number> {
  console.log(`config ${settings.file}: ok`);
  const gateway = new UndiciGatewayClient(gatewayClientOptions(settings));
  const core = new KmsCore({
    instanceId: settings.instanceId,
    crkId: settings.crkId,
    alg: settings.alg,
    dekBytes: settings.dekBytes,
    newDekPerEncrypt: true,
    dekLimits: { maxUses: 1, maxAgeMs: 1 },
    cacheSize: 0,
    cacheTtlMs: 0,
    gateway,
    clock: systemClock,
    random: systemRandom,
  });
  try {
    await core.refresh(); // learns the key_id (one wrap); failures surface in the round trip below
    await core.roundTrip();
    console.log(`token ${settings.tokenUrl}: ok`);
    console.log(`gateway ${settings.gatewayUrls.join(', ')}: wrap and unwrap ok`);
    console.log(`key_id ${core.status().keyId || '(unknown)'}`);
    return 0;
  } catch (err) {
    const e = isKeygateError(err)
      ? `${err.code}: ${err.message} ${JSON.stringify(err.detail ?? {})}`
      : String(err);
    console.error(`check failed: ${e}`);
    return 1;
  } finally {
    core.close();
    await gateway.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  // Help asked for, anywhere (`keygate-shim check --help`): the usage on stdout, and success.
  if (argv.includes('--help') || argv.includes('-h') || cmd === 'help') {
    console.log(USAGE);
    return 0;
  }
  switch (cmd) {
    case 'serve': {
      const settings = settingsOrExit(args);
      if (!settings) return 2;
      return runShim(settings, { logger: createLogger({ level: settings.logLevel, name: 'keygate-shim' }) });
    }
    case 'check': {
      const settings = settingsOrExit(args);
      return settings ? check(settings) : 2;
    }
    case 'encrypt':
    case 'decrypt':
    case 'status': {
      const socket = flag(args, '--socket');
      if (!socket) {
        console.error('--socket PATH is required');
        return 2;
      }
      // Loaded here, not at start: the client side is grpc-js (65 modules) that `serve` never runs.
      const { KmsClient } = await import('./grpc/kms-client.js');
      const client = new KmsClient(normaliseSocketPath(socket));
      const v1 = args.includes('--v1');
      try {
        if (cmd === 'status') {
          console.log(JSON.stringify(await client.status()));
        } else if (cmd === 'encrypt') {
          const input = await readStdin();
          if (v1) process.stdout.write(`${(await client.v1Encrypt(input)).cipher.toString('base64')}\n`);
          else {
            const r = await client.encrypt(input);
            process.stdout.write(`${r.key_id} ${r.ciphertext.toString('base64')}\n`);
          }
        } else {
          const parts = (await readStdin()).toString('utf8').trim().split(/\s+/);
          const b64 = parts.length > 1 ? (parts[1] ?? '') : (parts[0] ?? '');
          const cipher = Buffer.from(b64, 'base64');
          if (v1) process.stdout.write((await client.v1Decrypt(cipher)).plain);
          else {
            const keyId = flag(args, '--key-id') ?? (parts.length > 1 ? parts[0] : undefined);
            if (!keyId) {
              console.error('decrypt needs --key-id ID or "<key_id> <base64>" on stdin');
              return 2;
            }
            process.stdout.write((await client.decrypt(cipher, keyId)).plaintext);
          }
        }
        return 0;
      } catch (err) {
        const e = err as { code?: number; details?: string };
        console.error(`${cmd} failed: gRPC code ${e.code ?? '?'}: ${e.details ?? String(err)}`);
        return 1;
      } finally {
        client.close();
      }
    }
    default:
      console.error(USAGE);
      return cmd === undefined ? 0 : 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`keygate-shim: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
